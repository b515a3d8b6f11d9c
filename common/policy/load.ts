// Local-mode policy files: AuthorizationPolicy and PeerAuthentication resources read from
// YAML files or directories of them (multi-document YAML, `kind: List` too), validated, and
// watched for edits. A broken edit keeps the last good set, so a typo never drops the mesh's
// policies.

import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { WatchedSource, type WatchTarget } from '../watched-source.ts';
import { listYamlFiles, readYamlSources } from '../yaml-files.ts';
import {
  authorizationPolicySchema,
  fieldPath,
  parseWith,
  peerAuthenticationSchema,
  POLICY_API_GROUPS,
  policyId,
  type AuthorizationPolicy,
  type PeerAuthentication,
} from './resources.ts';

/** Everything the policy files hold that the sidecar uses. */
export interface PolicySet {
  readonly authorizationPolicies: readonly AuthorizationPolicy[];
  readonly peerAuthentications: readonly PeerAuthentication[];
}

export const EMPTY_POLICY_SET: PolicySet = Object.freeze({ authorizationPolicies: [], peerAuthentications: [] });

export interface LoadOptions {
  /** Told (at debug level) about documents of other kinds that are skipped. */
  readonly logger?: Logger;
}

/** One file's name (as the user wrote it) and text. */
export interface PolicySource {
  readonly file: string;
  readonly text: string;
}

const YAML_FILE = /\.ya?ml$/i;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Collector {
  readonly authorizationPolicies: AuthorizationPolicy[] = [];
  readonly peerAuthentications: PeerAuthentication[] = [];
  /** `<kind> <namespace>/<name>` → where it was defined, to reject duplicates. */
  private readonly seen = new Map<string, string>();
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  add(doc: unknown, where: string, prefix: readonly PropertyKey[]): void {
    if (doc === null || doc === undefined) return; // an empty document, e.g. after a trailing `---`
    const at = prefix.length === 0 ? '' : `${fieldPath(prefix)}: `;
    if (!isObject(doc) || typeof doc['kind'] !== 'string' || typeof doc['apiVersion'] !== 'string') {
      throw new ConfigError(`${where}: ${at}expected a Kubernetes object with apiVersion and kind`);
    }
    const kind = doc['kind'];
    const apiVersion = doc['apiVersion'];
    if (kind === 'List' || (kind.endsWith('List') && 'items' in doc)) {
      const items = doc['items'];
      if (!Array.isArray(items)) throw new ConfigError(`${where}: ${fieldPath([...prefix, 'items'])}: expected array`);
      items.forEach((item, i) => this.add(item, where, [...prefix, 'items', i]));
      return;
    }
    const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
    const ours = POLICY_API_GROUPS.includes(group);
    if (ours && kind === 'AuthorizationPolicy') {
      this.record(parseWith(authorizationPolicySchema, doc, where, prefix), where);
    } else if (ours && kind === 'PeerAuthentication') {
      this.record(parseWith(peerAuthenticationSchema, doc, where, prefix), where);
    } else if (ours) {
      // RequestAuthentication and friends: related, and a reader may expect them to work.
      this.logger.warn(`${kind} is not supported by tracemesh; ignoring it`, { where, kind, apiVersion });
    } else {
      this.logger.debug('ignoring a resource that is not a policy', { where, kind, apiVersion });
    }
  }

  private record(resource: AuthorizationPolicy | PeerAuthentication, where: string): void {
    const key = `${resource.kind} ${policyId(resource)}`;
    const earlier = this.seen.get(key);
    if (earlier !== undefined) {
      throw new ConfigError(`${where}: ${key} is already defined in ${earlier}; each namespace/name may appear once`);
    }
    this.seen.set(key, where);
    if (resource.kind === 'AuthorizationPolicy') this.authorizationPolicies.push(resource);
    else this.peerAuthentications.push(resource);
  }
}

/**
 * Parses policy files already read into memory. Documents are numbered from 1 in messages:
 * `policies/deny.yaml (document 2): spec.rules[0].to[0].operation.methods: expected array, received string`.
 * Throws a ConfigError on the first invalid document.
 */
export function parsePolicySources(sources: readonly PolicySource[], options: LoadOptions = {}): PolicySet {
  const collector = new Collector(options.logger ?? silentLogger);
  for (const { file, text } of sources) {
    const docs = parseAllDocuments(text);
    docs.forEach((doc, i) => {
      const where = `${file} (document ${i + 1})`;
      const error = doc.errors[0];
      if (error !== undefined) {
        // The first line has the reason and position; the rest is a source excerpt.
        const line = (error.message.split('\n')[0] ?? '').replace(/:$/, '');
        throw new ConfigError(`${where}: invalid YAML: ${line}`);
      }
      collector.add(doc.toJS(), where, []);
    });
  }
  return { authorizationPolicies: collector.authorizationPolicies, peerAuthentications: collector.peerAuthentications };
}

/** Parses the text of one file; see parsePolicySources. */
export function parsePolicyYaml(text: string, file: string, options: LoadOptions = {}): PolicySet {
  return parsePolicySources([{ file, text }], options);
}

function asList(paths: string | readonly string[]): readonly string[] {
  return typeof paths === 'string' ? [paths] : paths;
}

/**
 * The policy files behind `paths` (see listYamlFiles: a directory's `*.yaml` / `*.yml` files,
 * dot-files skipped, sorted, each file once).
 */
export function listPolicyFiles(paths: string | readonly string[]): Promise<string[]> {
  return listYamlFiles(paths, 'policy');
}

function readSources(paths: string | readonly string[]): Promise<PolicySource[]> {
  return readYamlSources(paths, 'policy');
}

/** Reads and validates YAML files and directories of them. Throws a ConfigError naming the problem. */
export async function loadPolicies(paths: string | readonly string[], options: LoadOptions = {}): Promise<PolicySet> {
  return parsePolicySources(await readSources(paths), options);
}

export interface PolicyWatcherOptions {
  readonly logger: Logger;
  /** Quiet period after the last change event before the files are re-read. Default 50 ms. */
  readonly debounceMs?: number;
  /** Called with every new valid set (after open(), never for the initial one). */
  readonly onChange?: (set: PolicySet) => void;
  /** Called when an edit makes the files unreadable or invalid; the previous set stays in force. */
  readonly onError?: (err: ConfigError) => void;
}

type Listener = (set: PolicySet) => void;

/**
 * Watches policy files and directories and publishes each new valid set (see
 * common/watched-source.ts for how edits are seen and debounced).
 */
export class PolicyWatcher {
  readonly paths: readonly string[];
  private readonly source: WatchedSource<PolicySet>;

  private constructor(paths: readonly string[], source: WatchedSource<PolicySet>) {
    this.paths = paths;
    this.source = source;
  }

  /** Loads and validates the policies, then starts watching. Throws ConfigError if they are unusable. */
  static async open(paths: string | readonly string[], options: PolicyWatcherOptions): Promise<PolicyWatcher> {
    const list = [...asList(paths)];
    const { logger, onError } = options;
    const source = await WatchedSource.open<PolicySource[], PolicySet>({
      what: 'policy files',
      targets: () => watchTargets(list),
      read: () => readSources(list),
      signature: signatureOf,
      parse: (sources) => parsePolicySources(sources, { logger }),
      debounceMs: options.debounceMs ?? 50,
      logger,
      onReload: (result, err) => {
        if (result === 'ok') {
          const set = source.current();
          logger.info('policies reloaded', { authorizationPolicies: set.authorizationPolicies.length, peerAuthentications: set.peerAuthentications.length });
          return;
        }
        // An edit that cannot be used: the previous set stays in force.
        const error = err instanceof ConfigError ? err : new ConfigError(String(err), { cause: err });
        logger.warn('policy files are unusable; keeping the previous policies', { err: error });
        try {
          onError?.(error);
        } catch (e) {
          logger.error('policy onError callback failed', { err: e });
        }
      },
    });
    if (options.onChange) source.subscribe(options.onChange);
    return new PolicyWatcher(list, source);
  }

  /** The last valid set. */
  current(): PolicySet {
    return this.source.current();
  }

  /** Registers a listener for new valid sets; returns its unsubscribe function. */
  subscribe(listener: Listener): () => void {
    return this.source.subscribe(listener);
  }

  /** Stops watching. Safe to call more than once. */
  close(): void {
    this.source.close();
  }

  /** Re-reads now; resolves once this reload (and any it queued) is done. Never rejects. */
  reload(): Promise<void> {
    return this.source.reload();
  }
}

/** One watcher per directory: a directory given as a path watches all its YAML files. */
async function watchTargets(paths: readonly string[]): Promise<WatchTarget[]> {
  const dirs = new Map<string, Set<string> | null>();
  for (const path of paths) {
    const isDir = await stat(path).then(
      (st) => st.isDirectory(),
      () => false,
    );
    const dir = resolve(isDir ? path : dirname(path));
    if (isDir) dirs.set(dir, null);
    else {
      const names = dirs.get(dir);
      if (names !== null) dirs.set(dir, (names ?? new Set<string>()).add(basename(path)));
    }
  }
  return [...dirs].map(([dir, names]) => ({ dir, matches: (name: string) => (names === null ? YAML_FILE.test(name) : names.has(name)) }));
}

function signatureOf(sources: readonly PolicySource[]): string {
  return sources.map((s) => `${s.file}\u0000${s.text}`).join('\u0000\u0000');
}
