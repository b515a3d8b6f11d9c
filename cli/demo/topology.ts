// The demo mesh: 4 services × 2 pods on 3 simulated nodes, a call graph 3 levels deep, and
// two pods that fail in different ways so the root-cause view has something to find.
//
//   loadgen ─▶ ingress ─▶ frontend ─▶ checkout ─┬─▶ inventory   (inventory-2's process crashes and restarts:
//                 │                  │                connection refused at its sidecar, retried on
//                 │                  │                inventory-1 by checkout's sidecar: recovered failures)
//                 │                  └─▶ payments    (payments-2 answers 500 to 30% of requests)
//                 └╌╌ 5%: payments /refund, denied by the AuthorizationPolicy `payments-callers`
//
// HTTPRoutes (ROUTES_YAML): 10% of payments calls go to the canary Service payments-v2 (one
// pod); a FaultInjection aborts 5% of checkout's calls to inventory with 503.
//
// Every hop between sidecars is mTLS with certificates from the demo's CA; each service runs
// as the service account of its own name.

export interface PodSpec {
  readonly service: string;
  readonly pod: string;
  readonly node: string;
  /** Fraction of requests the app answers with its own 500. */
  readonly failRate: number;
  /** With this probability, the app first calls payments /refund directly, which policy denies. */
  readonly policyViolation?: number;
  /** The app process is down for `downMs` of every `periodMs` (0 = never). */
  readonly crashLoop?: { readonly periodMs: number; readonly downMs: number };
}

export const NAMESPACE = 'demo';

/** Downstream calls of each service, made in order for every request. */
export const CALLS: Readonly<Record<string, readonly string[]>> = {
  frontend: ['checkout'],
  checkout: ['inventory', 'payments'],
  inventory: [],
  payments: [],
};

export const PODS: readonly PodSpec[] = [
  { service: 'frontend', pod: 'frontend-1', node: 'node-1', failRate: 0, policyViolation: 0.05 },
  { service: 'frontend', pod: 'frontend-2', node: 'node-2', failRate: 0, policyViolation: 0.05 },
  { service: 'checkout', pod: 'checkout-1', node: 'node-1', failRate: 0 },
  { service: 'checkout', pod: 'checkout-2', node: 'node-3', failRate: 0 },
  { service: 'inventory', pod: 'inventory-1', node: 'node-1', failRate: 0 },
  { service: 'inventory', pod: 'inventory-2', node: 'node-2', failRate: 0, crashLoop: { periodMs: 20_000, downMs: 4_000 } },
  { service: 'payments', pod: 'payments-1', node: 'node-2', failRate: 0 },
  { service: 'payments', pod: 'payments-2', node: 'node-3', failRate: 0.3 },
];

/** The pod the load generator sends through (a sidecar with an idle app, like an ingress gateway). */
export const INGRESS: PodSpec = { service: 'ingress', pod: 'ingress-1', node: 'node-1', failRate: 0 };

/** Only checkout may call payments: frontend's direct /refund calls are denied (403). */
export const POLICIES_YAML = `apiVersion: security.tracemesh.io/v1
kind: AuthorizationPolicy
metadata:
  name: payments-callers
  namespace: ${NAMESPACE}
spec:
  selector:
    matchLabels:
      app: payments
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/${NAMESPACE}/sa/checkout"]
`;

/** Share of payments traffic the canary (Service payments-v2) takes. */
export const CANARY_WEIGHT = 10;

/**
 * The canary: a new version of payments, deployed as its own Service (payments-v2) beside the
 * stable one, as GAMMA traffic splits do. Policies select it as `app: payments`.
 */
export const CANARY: PodSpec = { service: 'payments-v2', pod: 'payments-v2-1', node: 'node-1', failRate: 0 };
export const CANARY_LABELS: Readonly<Record<string, string>> = { app: 'payments', version: 'v2' };
/** Share of checkout's inventory calls that the FaultInjection aborts (503). */
export const FAULT_ABORT_PERCENT = 5;

/**
 * Routes (Gateway API, GAMMA): a canary split of payments (90% the payments Service, 10% the
 * payments-v2 canary) and a chaos route that aborts 5% of calls to inventory.
 */
export const ROUTES_YAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: payments-canary
  namespace: ${NAMESPACE}
spec:
  parentRefs:
    - { group: "", kind: Service, name: payments }
  rules:
    - backendRefs:
        - { name: payments, port: 80, weight: ${100 - CANARY_WEIGHT} }
        - { name: payments-v2, port: 80, weight: ${CANARY_WEIGHT} }
---
apiVersion: tracemesh.io/v1alpha1
kind: FaultInjection
metadata:
  name: inventory-chaos
  namespace: ${NAMESPACE}
spec:
  abort: { httpStatus: 503, percentage: ${FAULT_ABORT_PERCENT} }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: inventory-chaos
  namespace: ${NAMESPACE}
spec:
  parentRefs:
    - { group: "", kind: Service, name: inventory }
  rules:
    - filters:
        - type: ExtensionRef
          extensionRef: { group: tracemesh.io, kind: FaultInjection, name: inventory-chaos }
      backendRefs:
        - { name: inventory, port: 80 }
`;

/**
 * The failure fraction the traffic should show: 5% of requests are denied by policy first;
 * checkout's call to inventory is aborted by the fault 5% of the time, else inventory-2 gets
 * half of it (round robin) and refuses it while down (4 s of 20 s); of the payments calls that
 * remain, 10% go to the (healthy) canary and payments-2 would get half of the rest and fail 30%
 * under round robin. The sidecars balance by peak EWMA, which counts a failed try as slow, so
 * payments-2 gets far less than half once its first 500s are seen: `payments` is an upper
 * bound (the demo's runs show a few tenths of a percent).
 */
export function expectedFailureFraction(): { policy: number; fault: number; inventory: number; payments: number; total: number } {
  const policy = 0.05;
  const fault = (1 - policy) * (FAULT_ABORT_PERCENT / 100);
  // inventory-2's refusals are retried on inventory-1 (a connect failure is always safe to
  // retry), so they reach the client only when every try fails: about never.
  const inventory = 0;
  const payments = (1 - policy - fault - inventory) * (1 - CANARY_WEIGHT / 100) * 0.5 * 0.3;
  return { policy, fault, inventory, payments, total: policy + fault + inventory + payments };
}
