// A Kubernetes API server fixture for tests (no real one can run here). It serves the REST
// list/watch protocol as kube-apiserver does, for the resource types it is given:
// - GET <path>: a JSON list whose metadata.resourceVersion is the store's current version
//   (items without kind/apiVersion, as the server sends them);
// - GET <path>?watch=true&resourceVersion=N: a chunked stream of one JSON event per line,
//   {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":…}, starting after N; BOOKMARK
//   only with allowWatchBookmarks=true; a version older than the last compaction gets
//   410 Gone, as an ERROR event carrying a Status (what the watch cache does) or as an HTTP
//   410 answer (`tooOldWatch: 'http'`);
// - the test drives it: writes, bookmarks, compaction, expiring or dropping open watches.
// It serves HTTPS with a certificate of its own CA (in the kubeconfig it hands out, as a
// cluster's is) and wants the bearer token from that kubeconfig.
// Every request it did not expect (another path, method, query parameter, a missing bearer
// token) is answered 400 and recorded in `unexpected`; tests assert that list is empty.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { createCertificateAuthority } from '../ca/pki/authority.ts';
import { applyJsonPatch } from '../../test/support/json-patch-apply.ts';

export interface KubeResourceType {
  /** Cluster-wide list path, e.g. `/api/v1/pods`. */
  readonly path: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export const KUBE_TYPES = {
  services: { path: '/api/v1/services', apiVersion: 'v1', kind: 'Service', namespaced: true },
  endpointSlices: { path: '/apis/discovery.k8s.io/v1/endpointslices', apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', namespaced: true },
  pods: { path: '/api/v1/pods', apiVersion: 'v1', kind: 'Pod', namespaced: true },
  namespaces: { path: '/api/v1/namespaces', apiVersion: 'v1', kind: 'Namespace', namespaced: false },
} as const satisfies Record<string, KubeResourceType>;

/** Admission configuration the control plane keeps up to date (the injection webhook's caBundle), also served by default. */
export const KUBE_ADMISSION_TYPES = {
  mutatingWebhookConfigurations: { path: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', namespaced: false },
} as const satisfies Record<string, KubeResourceType>;

/** The policy CRDs of deploy/kubernetes/10-crds.yaml, also served by default. */
export const KUBE_POLICY_TYPES = {
  authorizationPolicies: { path: '/apis/security.tracemesh.io/v1/authorizationpolicies', apiVersion: 'security.tracemesh.io/v1', kind: 'AuthorizationPolicy', namespaced: true },
  peerAuthentications: { path: '/apis/security.tracemesh.io/v1/peerauthentications', apiVersion: 'security.tracemesh.io/v1', kind: 'PeerAuthentication', namespaced: true },
} as const satisfies Record<string, KubeResourceType>;

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface OpenWatch {
  readonly type: KubeResourceType;
  readonly res: ServerResponse;
  readonly bookmarks: boolean;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** Date.now() when it came. */
  readonly at: number;
}

export interface KubeApiFixtureOptions {
  /** Resource types served. Default: Services, EndpointSlices, Pods, Namespaces and the two policy CRDs. */
  readonly types?: readonly KubeResourceType[];
  /** How a watch from a compacted version is refused. Default `event`. */
  readonly tooOldWatch?: 'event' | 'http';
}

const LIST_PARAMS = new Set<string>();
const WATCH_PARAMS = new Set(['watch', 'resourceVersion', 'allowWatchBookmarks']);

export class KubeApiFixture {
  readonly url: string;
  readonly token: string;
  /** PEM of the CA that signed the server's certificate. */
  readonly caPem: string;
  /** Every request, in order. */
  readonly requests: RecordedRequest[] = [];
  /** Requests the fixture did not expect, described. */
  readonly unexpected: string[] = [];
  tooOldWatch: 'event' | 'http';
  private readonly server: Server;
  private readonly sockets: Set<Socket>;
  private readonly types: Map<string, KubeResourceType>;
  private revision = 1;
  private compactedAt = 0;
  /** path → `<ns>/<name>` → object. */
  private readonly store = new Map<string, Map<string, Obj>>();
  /** path → events in version order. */
  private readonly history = new Map<string, { rv: number; type: EventType; object: Obj }[]>();
  private readonly watches = new Set<OpenWatch>();

  private constructor(server: Server, sockets: Set<Socket>, url: string, token: string, caPem: string, types: readonly KubeResourceType[], tooOldWatch: 'event' | 'http') {
    this.server = server;
    this.sockets = sockets;
    this.caPem = caPem;
    this.url = url;
    this.token = token;
    this.types = new Map(types.map((t) => [t.path, t]));
    for (const t of types) {
      this.store.set(t.path, new Map());
      this.history.set(t.path, []);
    }
    this.tooOldWatch = tooOldWatch;
  }

  static async start(options: KubeApiFixtureOptions = {}): Promise<KubeApiFixture> {
    const token = `fixture-${randomUUID()}`;
    const ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    const serving = await ca.issueServingCertificate({ identity: { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'kube-apiserver' }, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const caPem = ca.trustBundle().pem;
    ca.close();
    let fixture: KubeApiFixture | undefined;
    const server = createServer({ cert: serving.certChainPem.join(''), key: serving.privateKeyPem }, (req, res) => fixture!.handle(req, res));
    const sockets = new Set<Socket>();
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    fixture = new KubeApiFixture(server, sockets, url, token, caPem, options.types ?? [...Object.values(KUBE_TYPES), ...Object.values(KUBE_POLICY_TYPES), ...Object.values(KUBE_ADMISSION_TYPES)], options.tooOldWatch ?? 'event');
    return fixture;
  }

  /** A kubeconfig for this server and its bearer token, as a user's would be. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fixture', server: this.url, caData: Buffer.from(this.caPem).toString('base64') }],
      users: [{ name: 'fixture-user', token: this.token }],
      contexts: [{ name: 'fixture', cluster: 'fixture', user: 'fixture-user' }],
      currentContext: 'fixture',
    });
    return kc;
  }

  /** The store's current resourceVersion. */
  resourceVersion(): string {
    return String(this.revision);
  }

  /** Creates or replaces an object (ADDED or MODIFIED), giving it a new resourceVersion. */
  apply(type: KubeResourceType, object: Record<string, unknown>): Obj {
    const md = (object['metadata'] ?? {}) as Record<string, unknown>;
    const key = this.key(type, md);
    const store = this.store.get(type.path)!;
    const prev = store.get(key);
    const obj = structuredClone({ ...object, metadata: { ...md } }) as Obj;
    obj.metadata['resourceVersion'] = String(++this.revision);
    obj.metadata['uid'] = prev?.metadata['uid'] ?? randomUUID();
    store.set(key, obj);
    this.emit(type, prev === undefined ? 'ADDED' : 'MODIFIED', obj);
    return obj;
  }

  /** The stored object, or undefined. */
  get(type: KubeResourceType, namespace: string | undefined, name: string): Obj | undefined {
    const found = this.store.get(type.path)!.get(this.key(type, { namespace, name }));
    return found === undefined ? undefined : withKind(type, structuredClone(found));
  }

  /** Deletes an object (DELETED, with the final state and a new resourceVersion). */
  delete(type: KubeResourceType, namespace: string | undefined, name: string): void {
    const key = this.key(type, { namespace, name });
    const store = this.store.get(type.path)!;
    const prev = store.get(key);
    if (prev === undefined) throw new Error(`fixture: no ${type.kind} ${key} to delete`);
    store.delete(key);
    const obj = structuredClone(prev);
    obj.metadata['resourceVersion'] = String(++this.revision);
    this.emit(type, 'DELETED', obj);
  }

  /** Sends a BOOKMARK at the current version to every open watch that asked for them. */
  bookmark(): number {
    let n = 0;
    for (const w of this.watches) {
      if (!w.bookmarks) continue;
      this.send(w, { type: 'BOOKMARK', object: { kind: w.type.kind, apiVersion: w.type.apiVersion, metadata: { resourceVersion: String(this.revision), creationTimestamp: null } } });
      n++;
    }
    return n;
  }

  /** Forgets history up to now: a watch from an older version gets 410 Gone. */
  compact(): void {
    this.compactedAt = this.revision;
    for (const h of this.history.values()) h.length = 0;
  }

  /** Compacts, then ends every open watch with an ERROR event carrying a 410 Status. */
  expireWatches(): number {
    this.compact();
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      this.send(w, { type: 'ERROR', object: goneStatus(0, this.compactedAt) });
      this.endWatch(w, 'close');
    }
    return n;
  }

  /** Ends every open watch: `close` as a server timeout does, `reset` by cutting the socket. */
  dropWatches(how: 'close' | 'reset'): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) this.endWatch(w, how);
    return n;
  }

  /** Open watches on `type` (all types when undefined). */
  openWatches(type?: KubeResourceType): number {
    return [...this.watches].filter((w) => type === undefined || w.type === type).length;
  }

  /** Requests to `type`'s path that were lists (not watches). */
  lists(type: KubeResourceType): number {
    return this.requests.filter((r) => r.path === type.path && r.query['watch'] === undefined).length;
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) this.endWatch(w, 'reset');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Every socket, including TLS connections still in their handshake (closeAllConnections
    // knows only those that reached HTTP), which would hold close() for the client's timeout.
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private key(type: KubeResourceType, md: { namespace?: unknown; name?: unknown }): string {
    if (typeof md.name !== 'string' || md.name === '') throw new Error(`fixture: a ${type.kind} needs metadata.name`);
    if (type.namespaced && typeof md.namespace !== 'string') throw new Error(`fixture: a ${type.kind} needs metadata.namespace`);
    return type.namespaced ? `${md.namespace as string}/${md.name}` : md.name;
  }

  private emit(type: KubeResourceType, eventType: EventType, obj: Obj): void {
    this.history.get(type.path)!.push({ rv: this.revision, type: eventType, object: obj });
    for (const w of this.watches) if (w.type === type) this.send(w, { type: eventType, object: withKind(type, obj) });
  }

  private send(w: OpenWatch, event: unknown): void {
    if (!w.res.writableEnded && !w.res.destroyed) w.res.write(JSON.stringify(event) + '\n');
  }

  private endWatch(w: OpenWatch, how: 'close' | 'reset'): void {
    this.watches.delete(w);
    if (how === 'reset') w.res.socket?.destroy();
    else w.res.end();
  }

  private refuse(req: IncomingMessage, res: ServerResponse, why: string): void {
    const what = `${req.method} ${req.url}: ${why}`;
    this.unexpected.push(what);
    status(res, 400, 'BadRequest', `the Kubernetes API fixture did not expect ${what}`);
  }

  /** Patches made through the API (PATCH), in order: the path and the operations. */
  readonly patches: { path: string; ops: unknown }[] = [];

  /** GET and PATCH (application/json-patch+json, RFC 6902, `test` failing with 422) of one cluster-scoped object. */
  private handleNamed(req: IncomingMessage, res: ServerResponse, type: KubeResourceType, name: string): void {
    const obj = this.store.get(type.path)!.get(name);
    const json = (code: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    };
    if (req.method === 'GET') {
      if (obj === undefined) return status(res, 404, 'NotFound', `${type.kind} "${name}" not found`);
      return json(200, withKind(type, obj));
    }
    if (req.method !== 'PATCH') return this.refuse(req, res, 'only GET and PATCH of a named object are served');
    if (req.headers['content-type'] !== 'application/json-patch+json') return this.refuse(req, res, `PATCH content-type ${String(req.headers['content-type'])}`);
    let text = '';
    req.setEncoding('utf8').on('data', (d: string) => (text += d));
    req.on('end', () => {
      if (obj === undefined) return status(res, 404, 'NotFound', `${type.kind} "${name}" not found`);
      let ops: unknown;
      let next: Obj;
      try {
        ops = JSON.parse(text);
        next = applyJsonPatch(withKind(type, obj), ops) as Obj;
      } catch (err) {
        return status(res, 422, 'Invalid', `the patch does not apply: ${(err as Error).message}`);
      }
      this.patches.push({ path: `${type.path}/${name}`, ops });
      const { apiVersion: _a, kind: _k, ...rest } = next;
      json(200, withKind(type, this.apply(type, rest as Record<string, unknown>)));
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const query: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [k, v] of url.searchParams) query[k] = v;
    this.requests.push({ method: req.method ?? '', path: url.pathname, query, at: Date.now() });
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.unexpected.push(`${req.method} ${req.url}: no or wrong bearer token`);
      status(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    const slash = url.pathname.lastIndexOf('/');
    const named = this.types.get(url.pathname.slice(0, slash));
    if (named !== undefined && !named.namespaced) return this.handleNamed(req, res, named, decodeURIComponent(url.pathname.slice(slash + 1)));
    const type = this.types.get(url.pathname);
    if (req.method !== 'GET') return this.refuse(req, res, 'only GET (list and watch) is served');
    if (type === undefined) return this.refuse(req, res, 'no such resource path');
    const watching = query['watch'] === 'true' || query['watch'] === '1';
    const allowed = watching ? WATCH_PARAMS : LIST_PARAMS;
    for (const k of Object.keys(query)) if (!allowed.has(k)) return this.refuse(req, res, `query parameter "${k}"`);
    if (!watching) {
      const items = [...this.store.get(type.path)!.values()];
      const body = JSON.stringify({ kind: `${type.kind}List`, apiVersion: type.apiVersion, metadata: { resourceVersion: String(this.revision) }, items });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    const rvText = query['resourceVersion'] ?? '';
    if (rvText !== '' && !/^\d+$/.test(rvText)) return this.refuse(req, res, `resourceVersion "${rvText}" is not a version`);
    const from = rvText === '' ? 0 : Number(rvText);
    if (from !== 0 && from < this.compactedAt && this.tooOldWatch === 'http') {
      status(res, 410, 'Expired', `too old resource version: ${from} (${this.compactedAt})`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const w: OpenWatch = { type, res, bookmarks: query['allowWatchBookmarks'] === 'true' };
    if (from !== 0 && from < this.compactedAt) {
      this.send(w, { type: 'ERROR', object: goneStatus(from, this.compactedAt) });
      res.end();
      return;
    }
    this.watches.add(w);
    res.on('close', () => this.watches.delete(w));
    if (from === 0) {
      // No version: the current state as ADDED events, then changes (the API's "most recent").
      for (const obj of this.store.get(type.path)!.values()) this.send(w, { type: 'ADDED', object: withKind(type, obj) });
    } else {
      for (const e of this.history.get(type.path)!) if (e.rv > from) this.send(w, { type: e.type, object: withKind(type, e.object) });
    }
  }
}

function withKind(type: KubeResourceType, obj: Obj): Obj {
  return { apiVersion: type.apiVersion, kind: type.kind, ...obj };
}

function goneStatus(from: number, compactedAt: number): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${compactedAt})`, reason: 'Expired', code: 410 };
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}
