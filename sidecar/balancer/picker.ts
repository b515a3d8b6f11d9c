// The picker contract (after grpc-js): an immutable view over one endpoint snapshot that
// chooses an endpoint per request. A balancer replaces its picker on every snapshot change.

import type { EndpointSnapshot, Endpoint } from '../endpoints/endpoints.ts';
import type { ProxyError } from '../errors.ts';

/** Outcome of one pick. A failure carries the error to synthesize; pick() never throws. */
export type PickResult =
  | { readonly kind: 'complete'; readonly endpoint: Endpoint }
  | { readonly kind: 'fail'; readonly error: ProxyError };

export interface Picker {
  /**
   * Chooses an endpoint of `service` for one request. Synchronous and allocation-free on
   * success; returns `fail` with a NO_ENDPOINT error when the service is unknown or empty.
   */
  pick(service: string): PickResult;
}

/** Builds a picker over one snapshot. Must not keep a reference to a previous picker. */
export type PickerFactory = (snapshot: EndpointSnapshot) => Picker;

const policies = new Map<string, PickerFactory>();

/** Registers a balancing policy by name; each policy file calls this once at load. */
export function registerPolicy(name: string, factory: PickerFactory): void {
  policies.set(name, factory);
}

/** The factory registered under `name`, or undefined. */
export function policy(name: string): PickerFactory | undefined {
  return policies.get(name);
}

/** Names of the registered policies, for error messages and help. */
export function policyNames(): string[] {
  return [...policies.keys()];
}
