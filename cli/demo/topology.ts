// The demo mesh: 4 services × 2 pods on 3 simulated nodes, a call graph 3 levels deep, and
// two pods that fail in different ways so the root-cause view has something to find.
//
//   loadgen ─▶ frontend ─▶ checkout ─┬─▶ inventory   (inventory-2's process crashes and restarts:
//                                    │                connection refused at its sidecar)
//                                    └─▶ payments    (payments-2 answers 500 to 30% of requests)

export interface PodSpec {
  readonly service: string;
  readonly pod: string;
  readonly node: string;
  /** Fraction of requests the app answers with its own 500. */
  readonly failRate: number;
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
  { service: 'frontend', pod: 'frontend-1', node: 'node-1', failRate: 0 },
  { service: 'frontend', pod: 'frontend-2', node: 'node-2', failRate: 0 },
  { service: 'checkout', pod: 'checkout-1', node: 'node-1', failRate: 0 },
  { service: 'checkout', pod: 'checkout-2', node: 'node-3', failRate: 0 },
  { service: 'inventory', pod: 'inventory-1', node: 'node-1', failRate: 0 },
  { service: 'inventory', pod: 'inventory-2', node: 'node-2', failRate: 0, crashLoop: { periodMs: 20_000, downMs: 4_000 } },
  { service: 'payments', pod: 'payments-1', node: 'node-2', failRate: 0 },
  { service: 'payments', pod: 'payments-2', node: 'node-3', failRate: 0.3 },
];

/**
 * The failure fraction the traffic should show, given round-robin balancing: inventory-2
 * gets half of inventory's calls and refuses them while down (4 s of 20 s); payments-2 gets
 * half of the payments calls that remain and fails 30% of them.
 */
export function expectedFailureFraction(): { inventory: number; payments: number; total: number } {
  const inventory = 0.5 * (4_000 / 20_000);
  const payments = (1 - inventory) * 0.5 * 0.3;
  return { inventory, payments, total: inventory + payments };
}
