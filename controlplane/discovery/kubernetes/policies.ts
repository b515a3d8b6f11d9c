// AuthorizationPolicy and PeerAuthentication from their CRDs (deploy/kubernetes/10-crds.yaml,
// `security.tracemesh.io/v1`), through the same informers as discovery (list, watch from the
// resourceVersion, bookmarks, relist on 410 Gone). Each object is validated with the schemas
// the policy files use (common/policy), so a CRD object and a YAML file mean the same thing.
// A malformed object is logged with its name, listed in `rejected()` and skipped; its last good
// version stays in force (a broken edit of a DENY policy must not lift the deny). The set is a
// PolicyFeed: the control plane distributes it over xDS as it does policy files.

import type { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../../../common/errors.ts';
import type { Logger } from '../../../common/logger.ts';
import { EMPTY_POLICY_SET, parsePolicySources, type PolicySet } from '../../../common/policy/load.ts';
import type { AuthorizationPolicy, PeerAuthentication } from '../../../common/policy/resources.ts';
import { startInformer, type Informer } from './informer.ts';
import { describeObject, MalformedObjectError, objectName } from './objects.ts';
import type { RejectedObject } from './source.ts';

export const POLICY_GROUP_VERSION = 'security.tracemesh.io/v1';
export const POLICY_PATHS = {
  authorizationPolicies: '/apis/security.tracemesh.io/v1/authorizationpolicies',
  peerAuthentications: '/apis/security.tracemesh.io/v1/peerauthentications',
} as const;

const MAX_REJECTED = 100;

type Kind = 'AuthorizationPolicy' | 'PeerAuthentication';

export interface KubernetesPoliciesOptions {
  readonly kubeConfig: KubeConfig;
  readonly logger: Logger;
}

export class KubernetesPolicies {
  private readonly options: KubernetesPoliciesOptions;
  private readonly logger: Logger;
  /** `<ns>/<name>` → the last good version. */
  private readonly authorization = new Map<string, AuthorizationPolicy>();
  private readonly peer = new Map<string, PeerAuthentication>();
  private readonly listeners = new Set<(set: PolicySet) => void>();
  private readonly informers: Informer[] = [];
  private readonly rejectedLog: RejectedObject[] = [];
  private set: PolicySet = EMPTY_POLICY_SET;
  private unsynced = 2;
  private syncWaiters: Array<() => void> = [];

  constructor(options: KubernetesPoliciesOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: 'kubernetes-policies' });
  }

  start(): void {
    const add = (path: string, kind: Kind): void => {
      this.informers.push(
        startInformer(
          this.options.kubeConfig,
          path,
          {
            upsert: (o) => this.upsert(kind, o),
            remove: (o) => this.remove(kind, o),
            synced: () => {
              if (--this.unsynced !== 0) return;
              this.rebuild();
              const w = this.syncWaiters;
              this.syncWaiters = [];
              for (const f of w) f();
            },
          },
          this.logger,
        ),
      );
    };
    add(POLICY_PATHS.authorizationPolicies, 'AuthorizationPolicy');
    add(POLICY_PATHS.peerAuthentications, 'PeerAuthentication');
  }

  /** Resolves once both informers have listed once. */
  synced(): Promise<void> {
    if (this.unsynced === 0) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  current(): PolicySet {
    return this.set;
  }

  subscribe(listener: (set: PolicySet) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  rejected(): readonly RejectedObject[] {
    return this.rejectedLog;
  }

  informerStatus(): { path: string; resourceVersion: string; lists: number }[] {
    return this.informers.map((i) => ({ path: i.path, resourceVersion: i.resourceVersion(), lists: i.lists() }));
  }

  async close(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private upsert(kind: Kind, raw: unknown): void {
    let key: string;
    let parsed: PolicySet;
    try {
      const { namespace, name } = objectName(kind, raw);
      key = `${namespace}/${name}`;
      // Items of a list carry no kind or apiVersion; the path says what they are.
      const text = JSON.stringify({ ...(raw as Record<string, unknown>), apiVersion: POLICY_GROUP_VERSION, kind });
      parsed = parsePolicySources([{ file: `${kind} ${key}`, text }]);
    } catch (err) {
      if (!(err instanceof ConfigError) && !(err instanceof MalformedObjectError)) {
        this.logger.error('Kubernetes policy event handling failed', { kind, object: describeObject(kind, raw), error: String((err as Error)?.stack ?? err) });
        return;
      }
      const object = err instanceof MalformedObjectError ? err.object : describeObject(kind, raw);
      const reason = err.message.replace(/^\S+ \S+ \(document 1\): /, '');
      this.logger.warn('malformed policy skipped; its last good version stays', { kind, object, reason });
      this.rejectedLog.push({ object, reason, at: new Date().toISOString() });
      if (this.rejectedLog.length > MAX_REJECTED) this.rejectedLog.shift();
      return;
    }
    if (kind === 'AuthorizationPolicy') this.authorization.set(key, parsed.authorizationPolicies[0]!);
    else this.peer.set(key, parsed.peerAuthentications[0]!);
    if (this.unsynced === 0) this.rebuild();
  }

  private remove(kind: Kind, raw: unknown): void {
    let key: string;
    try {
      const { namespace, name } = objectName(kind, raw);
      key = `${namespace}/${name}`;
    } catch {
      return;
    }
    const removed = kind === 'AuthorizationPolicy' ? this.authorization.delete(key) : this.peer.delete(key);
    if (removed && this.unsynced === 0) this.rebuild();
  }

  private rebuild(): void {
    const sorted = <T>(m: Map<string, T>): T[] => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    this.set = Object.freeze({ authorizationPolicies: sorted(this.authorization), peerAuthentications: sorted(this.peer) });
    for (const l of this.listeners) {
      try {
        l(this.set);
      } catch (err) {
        this.logger.error('policy listener failed', { err });
      }
    }
  }
}
