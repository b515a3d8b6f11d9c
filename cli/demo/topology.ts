// The demo mesh: 4 services × 2 pods on 3 simulated nodes, a call graph 3 levels deep, and
// two pods that fail in different ways so the root-cause view has something to find.
//
//   loadgen ─▶ ingress ─▶ frontend ─▶ checkout ─┬─▶ inventory   (inventory-2's process crashes and restarts:
//                 │                  │                connection refused at its sidecar)
//                 │                  └─▶ payments    (payments-2 answers 500 to 30% of requests)
//                 └╌╌ 5%: payments /refund, denied by the AuthorizationPolicy `payments-callers`
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

/**
 * The failure fraction the traffic should show, given round-robin balancing: 5% of requests
 * are denied by policy first; inventory-2 gets half of inventory's calls and refuses them while
 * down (4 s of 20 s); payments-2 gets half of the payments calls that remain and fails 30%.
 */
export function expectedFailureFraction(): { policy: number; inventory: number; payments: number; total: number } {
  const policy = 0.05;
  const inventory = (1 - policy) * 0.5 * (4_000 / 20_000);
  const payments = (1 - policy - inventory) * 0.5 * 0.3;
  return { policy, inventory, payments, total: policy + inventory + payments };
}
