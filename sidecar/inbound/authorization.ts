// The inbound side's view of the security policies: the Authorizer compiled for this workload
// (AuthorizationPolicy) and its mTLS mode (PeerAuthentication), rebuilt whenever the policy
// source publishes a new set. Both are read per request, so a reload applies at once.

import type { Logger } from '../../common/logger.ts';
import { createAuthorizer, resolveMtlsModes, type Authorizer, type EffectiveMtlsMode, type MtlsModes, type Workload } from '../policy/authorize.ts';
import type { PolicySet } from '../../common/policy/load.ts';

/** What supplies policy sets: a PolicyWatcher over YAML files, or a test's static set. */
export interface PolicySetSource {
  current(): PolicySet;
  /** Calls `listener` with every later valid set; returns the function that removes it. */
  subscribe(listener: (set: PolicySet) => void): () => void;
}

export interface InboundPolicyOptions {
  readonly workload: Workload;
  /** Namespace whose policies apply mesh-wide. */
  readonly rootNamespace: string;
  /** Mode when no PeerAuthentication sets one (`--mtls-mode`). */
  readonly defaultMode: EffectiveMtlsMode;
  /** The app's port: PeerAuthentication `portLevelMtls` and `destination.port` refer to it. */
  readonly appPort: number;
  readonly logger: Logger;
}

export class InboundPolicy {
  /** Undefined when no policy source is configured: no authorization at all. */
  authorizer: Authorizer | undefined;
  /** The mode enforced on the inbound port now. */
  mode: EffectiveMtlsMode;
  modes: MtlsModes | undefined;
  private readonly o: InboundPolicyOptions;
  private readonly unsubscribe: () => void;

  constructor(source: PolicySetSource | undefined, o: InboundPolicyOptions) {
    this.o = o;
    this.mode = o.defaultMode;
    this.authorizer = undefined;
    this.modes = undefined;
    if (source === undefined) {
      this.unsubscribe = () => {};
      return;
    }
    this.apply(source.current());
    this.unsubscribe = source.subscribe((set) => this.apply(set));
  }

  /** Stops following the source. Safe to call twice. */
  close(): void {
    this.unsubscribe();
  }

  private apply(set: PolicySet): void {
    const { workload, rootNamespace, defaultMode, appPort } = this.o;
    this.authorizer = createAuthorizer(set.authorizationPolicies, workload, { rootNamespace });
    this.modes = resolveMtlsModes(set.peerAuthentications, workload, { rootNamespace, defaultMode });
    const before = this.mode;
    this.mode = this.modes.modeFor(appPort);
    this.o.logger.info('security policies applied', {
      allow: this.authorizer.applicable.allow,
      deny: this.authorizer.applicable.deny,
      mtlsMode: this.mode,
      ...(before !== this.mode ? { previousMtlsMode: before } : {}),
    });
  }
}
