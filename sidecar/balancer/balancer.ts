// Holds the current picker for an endpoint source and swaps it on every snapshot change.

import { ConfigError } from '../../common/errors.ts';
import type { EndpointSource } from '../endpoints/endpoints.ts';
import { policy, policyNames, type Picker } from './picker.ts';
import './round-robin.ts';

export class Balancer {
  /** The picker over the latest snapshot. Read it per request; never cache it. */
  picker: Picker;
  private readonly unsubscribe: () => void;

  /** Throws ConfigError when `policyName` is not registered. */
  constructor(source: EndpointSource, policyName = 'round_robin') {
    const factory = policy(policyName);
    if (factory === undefined) {
      throw new ConfigError(`unknown load-balancing policy "${policyName}"; known: ${policyNames().join(', ')}`);
    }
    this.picker = factory(source.current());
    this.unsubscribe = source.subscribe((snapshot) => {
      this.picker = factory(snapshot);
    });
  }

  /** Stops following the source. Safe to call twice. */
  close(): void {
    this.unsubscribe();
  }
}
