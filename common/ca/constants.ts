// Facts about the mesh CA that both its server (controlplane/ca) and its clients (sidecars,
// the CLI) need; the sidecar reaches the control plane only over the wire, so they live here.

/** Istio's port for the CA and xDS on istiod. */
export const DEFAULT_CA_PORT = 15012;
/** Namespace and service account of the control plane: its SPIFFE ID is built from them. */
export const CONTROL_PLANE_NAMESPACE = 'tracemesh-system';
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'tracemesh-controlplane';
/** Trailing metadata key that carries a CA error's stable code (see errors.ts). */
export const ERROR_CODE_METADATA_KEY = 'x-tracemesh-error-code';
