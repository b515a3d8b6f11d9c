// The ingress gateway: a sidecar without an app whose front door faces outside clients. Each
// port of the served Gateway gets a listener (HTTPS: TLS terminated with the certificate the
// client's SNI selects; HTTP: plaintext). A request is matched to a Gateway listener by its
// host, then to an HTTPRoute rule by the same table and planner the mesh routes use
// (common/routes: resolveGateway + planRoute), and forwarded to the embedded sidecar's
// outbound listener, which carries it like any app's call: balancing, retries, outlier
// detection, and the mTLS hop to the backend's sidecar with the gateway's own SPIFFE identity.
// The gateway starts the trace at the edge: a SERVER span and an access-log record per
// request, the outbound CLIENT span below it. Route files and certificates are watched; an edit that does not
// validate is refused (file, resource, reason) and the last good set stays in force.

import { randomUUID } from 'node:crypto';
import { Agent, createServer as createHttpServer, request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Link, type Span } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { Counter } from 'prom-client';
import { ConfigError } from '../../common/errors.ts';
import { createLogger, type Logger } from '../../common/logger.ts';
import { parseRouteSources, compileRouteFiles, type LoadedRoutes } from '../../common/routes/load.ts';
import { applyHeaderModifier, planRoute, type HeaderEditor, type RespondPlan } from '../../common/routes/plan.ts';
import type { Gateway } from '../../common/routes/resources.ts';
import type { CompiledBackend, RouteRequest } from '../../common/routes/table.ts';
import { ATTR, MESH_ERROR, MESH_ERROR_HEADER } from '../../common/semconv.ts';
import { extractTraceContext, formatTraceparent, traceresponseFor, type TraceContextResult } from '../../common/trace-context.ts';
import { WatchedSource } from '../../common/watched-source.ts';
import { readYamlSources, yamlSignature, yamlWatchTargets, type FileSource } from '../../common/yaml-files.ts';
import { errorBody, ListenError, ProxyError, upstreamError, type Hop } from '../errors.ts';
import { downstreamResponseHeaders, upstreamRequestHeaders } from '../proxy/headers.ts';
import { startSidecar, type Sidecar, type SidecarDeps, type SidecarOptions } from '../sidecar.ts';
import { FdLineSink, type AccessLogEntry, type AccessLogSink } from '../telemetry/access-log.ts';
import { createTelemetry } from '../telemetry/telemetry.ts';
import { watchCertificates, type CertificateFiles } from './certificates.ts';
import { compileGateway, listenerFor, parseGatewayRef, selectGateway, whereDefined, type GatewayRef, type PortListeners } from './listeners.ts';

/** How a `traceparent` from outside is treated. */
export type EdgeTraceContext = 'restart' | 'trust';
export const EDGE_TRACE_CONTEXTS: readonly EdgeTraceContext[] = ['restart', 'trust'];

export type { CertificateFiles } from './certificates.ts';

export interface GatewayOptions {
  /** The embedded sidecar (identity, endpoints, collector, limits, outbound policy, route files). */
  readonly sidecar: SidecarOptions;
  /** `namespace/name` of the Gateway to serve; '' when the route files define exactly one. */
  readonly gateway?: string;
  /** certificateRef name → PEM files, for the HTTPS listeners. */
  readonly certificates?: Readonly<Record<string, CertificateFiles>>;
  /** Gateway listener port → the local port to bind it on (0: any free one); absent: the listener's own port. */
  readonly listenerPorts?: Readonly<Record<number, number>>;
  /** Default `restart`: outside trace context becomes a link of a new trace. */
  readonly edgeTraceContext?: EdgeTraceContext;
  /** Quiet period after a route file change; default 50 ms. */
  readonly reloadDebounceMs?: number;
}

export interface IngressGateway {
  /** Gateway listener port → the bound local port. */
  readonly ports: ReadonlyMap<number, number>;
  readonly sidecar: Sidecar;
  /** `namespace/name` of the Gateway served. */
  readonly gateway: string;
  /** Re-reads the route files and certificates now (tests; the watchers do it on their own). */
  reload(): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** What one reload of the route files yields: the routes and the served Gateway compiled from them. */
interface Served {
  readonly routes: LoadedRoutes;
  readonly gateway: Gateway;
  readonly ports: readonly PortListeners[];
}

const REQUEST_ID = 'x-request-id';

/** Builds the routes + Gateway of one reading of the files; throws a ConfigError naming file, resource and reason. */
function serve(sources: FileSource[], ref: GatewayRef | undefined, certificates: ReadonlySet<string>, logger: Logger): Served {
  const files = parseRouteSources(sources, { logger });
  const gateway = selectGateway(files, ref);
  const ports = compileGateway(gateway, files, certificates, (kind, ns, name) => whereDefined(sources, kind, ns, name));
  return { routes: compileRouteFiles(files), gateway, ports };
}

class HeaderMap implements HeaderEditor {
  readonly h: OutgoingHttpHeaders;
  constructor(h: OutgoingHttpHeaders) {
    this.h = h;
  }
  set(name: string, value: string): void {
    this.h[name.toLowerCase()] = value;
  }
  add(name: string, value: string): void {
    const k = name.toLowerCase();
    const v = this.h[k];
    this.h[k] = v === undefined ? value : Array.isArray(v) ? [...(v as string[]), value] : `${String(v)}, ${value}`;
  }
  remove(name: string): void {
    delete this.h[name.toLowerCase()];
  }
}

function normalizeHost(raw: string | undefined): string {
  if (raw === undefined) return '';
  let h = raw.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  if (colon !== -1) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

function respondError(plan: RespondPlan): ProxyError {
  const details = { route: plan.route ?? null, rule: plan.rule ?? null };
  if (plan.reason === 'ROUTE_NOT_FOUND') return new ProxyError(MESH_ERROR.routeNotFound, plan.message, { details });
  if (plan.reason === 'NO_BACKEND') return new ProxyError(MESH_ERROR.noBackend, plan.message, { details });
  return new ProxyError(MESH_ERROR.faultInjected, plan.message, { status: plan.status, details: { ...details, fault: plan.fault ?? null } });
}

/** The Host the embedded outbound listener routes by: the backend Service as a mesh app names it. */
function backendAuthority(b: CompiledBackend, namespace: string): string {
  const name = b.namespace === namespace ? b.service : `${b.service}.${b.namespace}`;
  return b.port === undefined ? name : `${name}:${b.port}`;
}

function listen(server: HttpServer, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new ListenError(`cannot listen on ${host}:${port} for ${what}: ${err.message}; choose another port with --listener-ports`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      server.on('error', () => {});
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Why a TLS handshake with an outside client failed, as a metric label. */
function handshakeReason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null;
  const text = `${String(e?.code ?? '')} ${String(e?.message ?? '')}`;
  if (/handshake timeout/i.test(text)) return 'timeout';
  if (/unknown_sni|no certificate for/i.test(text)) return 'unknown_sni';
  if (/WRONG_VERSION_NUMBER|HTTP_REQUEST|wrong version number|http request/i.test(text)) return 'not_tls';
  if (/NO_SHARED_CIPHER|UNSUPPORTED_PROTOCOL|VERSION_TOO_LOW|no shared cipher|unsupported protocol/i.test(text)) return 'no_shared_parameters';
  if (/ECONNRESET|socket hang up/i.test(text)) return 'reset';
  return 'other';
}

/** Starts a gateway. Rejects with ConfigError, ListenError or IdentityError, leaving nothing running. */
export async function startGateway(options: GatewayOptions, deps: SidecarDeps = {}): Promise<IngressGateway> {
  const so = options.sidecar;
  const logger = (deps.logger ?? createLogger({ component: 'gateway' })).child({ service: so.service });
  const routeFiles = so.routeFiles ?? [];
  if (routeFiles.length === 0) throw new ConfigError('a gateway needs --route-files with its Gateway and HTTPRoutes');
  const namespace = so.namespace ?? 'default';
  const ref = parseGatewayRef(options.gateway ?? '', namespace);
  const traceMode = options.edgeTraceContext ?? 'restart';
  if (!EDGE_TRACE_CONTEXTS.includes(traceMode)) throw new ConfigError(`--edge-trace-context must be restart or trust, got "${String(traceMode)}"`);
  const certFiles = options.certificates ?? {};
  const certNames = new Set(Object.keys(certFiles));

  const cleanups: Array<() => void | Promise<void>> = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  try {
    // Certificates first: a missing file is a start-up error, never a half-started gateway.
    const certReloads: { counter?: Counter<'result'> } = {};
    const certs = await watchCertificates(certFiles, {
      logger,
      debounceMs: options.reloadDebounceMs ?? 50,
      onReload: (result, err) => {
        certReloads.counter?.inc({ result });
        if (result === 'ok') logger.info('gateway certificates reloaded');
        else logger.warn('gateway certificates refused; keeping the last good ones', { err: err instanceof Error ? err.message : String(err) });
      },
    });
    cleanups.push(() => certs.close());

    const metricsReady: { reloads?: Counter<'result'> } = {};
    let gatewayId = '';
    const watched = await WatchedSource.open<FileSource[], Served>({
      what: 'gateway route files',
      targets: () => yamlWatchTargets(routeFiles),
      read: () => readYamlSources(routeFiles, 'route'),
      signature: yamlSignature,
      parse: (sources) => serve(sources, ref, certNames, logger),
      debounceMs: options.reloadDebounceMs ?? 50,
      logger,
      onReload: (result, err) => {
        metricsReady.reloads?.inc({ result });
        if (result === 'ok') logger.info('gateway routes reloaded', { gateway: gatewayId });
        else logger.warn('gateway route files refused; keeping the last good Gateway and routes', { err: err instanceof Error ? err.message : String(err) });
      },
    }).catch((err: unknown) => {
      throw err instanceof ConfigError ? new ConfigError(`${err.message}; check --route-files`, { cause: err }) : err;
    });
    cleanups.push(() => watched.close());
    const first = watched.current();
    gatewayId = `${first.gateway.metadata.namespace}/${first.gateway.metadata.name}`;
    const gwRef = { namespace: first.gateway.metadata.namespace, name: first.gateway.metadata.name };

    const sidecar = await startSidecar({ ...so, service: so.service }, { ...deps, logger });
    cleanups.push(() => sidecar.close());
    const config = sidecar.config;
    const hop: Hop = { service: config.service, pod: config.pod };
    const registry = sidecar.registry;
    const requests = new Counter({ name: 'tracemesh_gateway_requests_total', help: 'Requests the gateway answered, by Gateway listener (empty: no listener took the host) and response code.', labelNames: ['listener', 'response_code'], registers: [registry] });
    const handshakeFailures = new Counter({ name: 'tracemesh_gateway_tls_handshake_failures_total', help: 'TLS handshakes with outside clients that failed, by reason: timeout (--tls-handshake-timeout), unknown_sni, not_tls, no_shared_parameters, reset, other.', labelNames: ['port', 'reason'], registers: [registry] });
    const refusals = new Counter({ name: 'tracemesh_gateway_refusals_total', help: 'Connections and requests the gateway refused at a limit: concurrency (--max-downstream-connections), deadline (--request-headers-timeout).', labelNames: ['reason'], registers: [registry] });
    certReloads.counter = new Counter({ name: 'tracemesh_gateway_certificate_reloads_total', help: 'Reloads of the --certificates files: ok, invalid or unreadable (refused; the last good certificates stay).', labelNames: ['result'], registers: [registry] });
    metricsReady.reloads = new Counter({ name: 'tracemesh_gateway_route_reloads_total', help: 'Reloads of the gateway route files: ok, invalid (refused; the last good set stays), unreadable.', labelNames: ['result'], registers: [registry] });

    const telemetry = createTelemetry({
      service: config.service,
      pod: config.pod,
      namespace: config.namespace,
      node: config.node,
      samplingRatio: config.samplingRatio,
      collectorEndpoint: config.collectorEndpoint,
      spanExporter: deps.spanExporter,
      logExporter: deps.logExporter,
      exportDelayMs: deps.exportDelayMs,
    });
    cleanups.push(() => telemetry.shutdown());
    const tracer = telemetry.tracer;
    const stdoutSink = deps.accessLogSink === undefined && config.accessLog === 'stdout' ? new FdLineSink(1) : undefined;
    const sink: AccessLogSink | undefined = deps.accessLogSink ?? stdoutSink?.write;
    if (stdoutSink !== undefined) cleanups.push(() => stdoutSink.drain());

    // Pooled connections to the embedded outbound listener: an unused one is closed after
    // --app-idle-timeout (4 s), well before that listener's own --idle-timeout closes it.
    const agent = new Agent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256, timeout: config.limits.appIdleTimeoutMs });
    cleanups.push(() => agent.destroy());
    const limits = config.limits;
    const inFlight = new Set<ServerResponse>();

    interface Edge {
      readonly span: Span;
      readonly startMs: number;
      readonly requestId: string;
      readonly incoming: TraceContextResult;
      listener: string;
      service: string;
      route: string | undefined;
      bytesIn: number;
      bytesOut: number;
      done: boolean;
    }

    const finish = (req: IncomingMessage, res: ServerResponse, e: Edge, status: number, error: ProxyError | undefined, aborted: boolean): void => {
      if (e.done) return;
      e.done = true;
      inFlight.delete(res);
      const span = e.span;
      span.setAttribute(ATTR.httpResponseStatusCode, status);
      if (e.service !== '') span.setAttribute(ATTR.meshDestinationService, e.service);
      if (error !== undefined) {
        span.setAttribute(ATTR.meshErrorCode, error.code);
        span.setAttribute(ATTR.errorType, error.code);
        span.recordException({ name: error.code, message: error.message });
      }
      if (status >= 500 || aborted) span.setStatus({ code: SpanStatusCode.ERROR, message: error?.message ?? (aborted ? 'the client went away before the response completed' : `HTTP ${status}`) });
      span.end();
      requests.inc({ listener: e.listener, response_code: String(status) });
      const sc = span.spanContext();
      const durationMs = Math.round((performance.now() - e.startMs) * 1000) / 1000;
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (sink !== undefined) {
        const entry: AccessLogEntry & { gateway: string; listener: string; route: string | null } = {
          ts: new Date().toISOString(),
          trace_id: sc.traceId,
          span_id: sc.spanId,
          request_id: e.requestId,
          direction: 'inbound',
          source_workload: 'outside',
          service: e.service,
          method: req.method ?? 'GET',
          path,
          status,
          duration_ms: durationMs,
          upstream: e.service === '' ? '' : `127.0.0.1:${sidecar.outboundPort}`,
          upstream_pod: null,
          bytes_received: e.bytesIn,
          bytes_sent: e.bytesOut,
          retry_attempt: 0,
          retry_reason: null,
          mesh_error: error?.code ?? null,
          aborted,
          tls_mode: (req.socket as { encrypted?: boolean }).encrypted === true ? 'tls' : 'none',
          peer_identity: null,
          policy_decision: null,
          policy: null,
          gateway: gatewayId,
          listener: e.listener,
          route: e.route ?? null,
        };
        sink(JSON.stringify(entry));
      }
      const otel = telemetry.logger;
      if (otel !== undefined) {
        const failed = error !== undefined || status >= 500 || aborted;
        otel.emit({
          eventName: 'tracemesh.access',
          severityNumber: failed ? SeverityNumber.ERROR : status >= 400 ? SeverityNumber.WARN : SeverityNumber.INFO,
          severityText: failed ? 'ERROR' : status >= 400 ? 'WARN' : 'INFO',
          body: `${req.method ?? 'GET'} ${e.service}${path} ${status}${error === undefined ? '' : ' ' + error.code}`,
          attributes: {
            [ATTR.meshDirection]: 'inbound',
            [ATTR.httpRequestMethod]: req.method ?? 'GET',
            [ATTR.urlPath]: path,
            [ATTR.httpResponseStatusCode]: status,
            [ATTR.meshDestinationService]: e.service,
            [ATTR.requestId]: e.requestId,
            'mesh.gateway': gatewayId,
            'mesh.gateway.listener': e.listener,
            'mesh.duration_ms': durationMs,
            'http.request.body.size': e.bytesIn,
            'http.response.body.size': e.bytesOut,
            ...(error === undefined ? {} : { [ATTR.meshErrorCode]: error.code }),
          },
          context: trace.setSpanContext(ROOT_CONTEXT, sc),
        });
      }
    };

    const fail = (req: IncomingMessage, res: ServerResponse, e: Edge, err: ProxyError): void => {
      if (res.headersSent) {
        res.destroy();
        finish(req, res, e, res.statusCode, err, false);
        return;
      }
      const body = errorBody(err, hop, e.span.spanContext().traceId);
      e.bytesOut = Buffer.byteLength(body);
      res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': e.bytesOut, [MESH_ERROR_HEADER]: err.code, traceresponse: traceresponseFor(e.span.spanContext(), e.incoming) });
      res.end(body);
      finish(req, res, e, err.status, err, false);
    };

    const handle = (req: IncomingMessage, res: ServerResponse, port: number, scheme: 'http' | 'https'): void => {
      const startMs = performance.now();
      const served = watched.current();
      const method = req.method ?? 'GET';
      const target = req.url ?? '/';
      const q = target.indexOf('?');
      const path = q === -1 ? target : target.slice(0, q);
      const host = normalizeHost(req.headers.host);
      const incoming = extractTraceContext(req.headers);
      const attributes: Attributes = {
        [ATTR.httpRequestMethod]: method,
        [ATTR.urlPath]: path,
        [ATTR.urlScheme]: scheme,
        [ATTR.serverAddress]: host,
        [ATTR.serverPort]: port,
        [ATTR.networkProtocolVersion]: req.httpVersion,
        [ATTR.meshDirection]: 'inbound',
        'mesh.gateway': gatewayId,
        'mesh.edge.trace_context': traceMode,
      };
      if (req.socket.remoteAddress !== undefined) attributes[ATTR.networkPeerAddress] = req.socket.remoteAddress;
      if (req.socket.remotePort !== undefined) attributes[ATTR.networkPeerPort] = req.socket.remotePort;
      const ua = req.headers['user-agent'];
      if (ua !== undefined) attributes[ATTR.userAgentOriginal] = ua;
      const outsideId = req.headers[REQUEST_ID];
      const requestId = traceMode === 'trust' && typeof outsideId === 'string' && outsideId !== '' ? outsideId : randomUUID();
      attributes[ATTR.requestId] = requestId;
      let parent = ROOT_CONTEXT;
      const links: Link[] = [];
      if (incoming.kind === 'found') {
        const sc = { traceId: incoming.context.traceId, spanId: incoming.context.spanId, traceFlags: incoming.context.traceFlags, isRemote: true };
        // Outside input is untrusted by default: the client's trace becomes a link, not the parent.
        if (traceMode === 'trust') parent = trace.setSpanContext(ROOT_CONTEXT, sc);
        else links.push({ context: sc, attributes: { 'mesh.link.reason': 'untrusted edge trace context' } });
      } else if (incoming.kind === 'invalid') {
        attributes[ATTR.meshInvalidTraceHeader] = incoming.value.slice(0, 512);
      }
      const span = tracer.startSpan(method, { kind: SpanKind.SERVER, attributes, links }, parent);
      const e: Edge = { span, startMs, requestId, incoming, listener: '', service: '', route: undefined, bytesIn: 0, bytesOut: 0, done: false };
      inFlight.add(res);
      res.on('close', () => {
        if (!e.done) finish(req, res, e, res.headersSent ? res.statusCode : 499, undefined, true);
      });

      const ports = served.ports.find((p) => p.port === port);
      const listener = ports === undefined ? undefined : listenerFor(ports, host);
      if (listener === undefined) {
        fail(req, res, e, new ProxyError(MESH_ERROR.routeNotFound, `no listener of Gateway ${gatewayId} on port ${port} accepts host "${host}"${ports === undefined ? '' : ` (its hostnames: ${ports.listeners.map((l) => l.hostname ?? '*').join(', ')})`}`, { details: { gateway: gatewayId, host } }));
        return;
      }
      e.listener = listener.name;
      span.setAttribute('mesh.gateway.listener', listener.name);
      const routeReq: RouteRequest = { method, path, query: q === -1 ? '' : target.slice(q + 1), header: (name) => { const v = req.headers[name]; return Array.isArray(v) ? v.join(', ') : v; }, grpc: false };
      const resolution = served.routes.table.resolveGateway(gwRef, listener.name, host, routeReq);
      const plan = planRoute(resolution, routeReq, { scheme, host, port }, Math.random);
      if (plan.kind === 'direct') {
        fail(req, res, e, new ProxyError(MESH_ERROR.routeNotFound, `no HTTPRoute attached to Gateway ${gatewayId} listener ${listener.name} matches ${method} ${host}${path}`, { details: { gateway: gatewayId, listener: listener.name } }));
        return;
      }
      const routeName = plan.kind === 'forward' ? plan.rule.route : plan.route;
      if (routeName !== undefined) {
        e.route = routeName;
        span.setAttribute(ATTR.meshRoute, routeName);
      }
      if (plan.kind !== 'forward' && plan.rule !== undefined) span.setAttribute(ATTR.meshRouteRule, plan.rule);
      if (plan.fault !== undefined) span.setAttribute(ATTR.meshFault, plan.fault);
      const later = (delayMs: number, f: () => void): void => {
        if (delayMs <= 0) f();
        else setTimeout(() => { if (!e.done) f(); }, delayMs);
      };
      if (plan.kind === 'respond') {
        const err = plan.reason === 'ROUTE_NOT_FOUND' && plan.route === undefined
          ? new ProxyError(MESH_ERROR.routeNotFound, `no HTTPRoute attached to Gateway ${gatewayId} listener ${listener.name} matches ${method} ${host}${path}`, { details: { gateway: gatewayId, listener: listener.name } })
          : respondError(plan);
        later(plan.delayMs, () => fail(req, res, e, err));
        return;
      }
      if (plan.kind === 'redirect') {
        later(plan.delayMs, () => {
          const headers = new HeaderMap({ location: plan.location, 'content-length': 0, traceresponse: traceresponseFor(span.spanContext(), incoming) });
          for (const m of plan.responseHeaders) applyHeaderModifier(m, headers);
          res.writeHead(plan.status, headers.h);
          res.end();
          finish(req, res, e, plan.status, undefined, false);
        });
        return;
      }
      span.setAttribute(ATTR.meshRouteRule, plan.rule.rule);
      e.service = plan.backend.service;
      later(plan.delayMs, () => {
        const sc = span.spanContext();
        const headers = new HeaderMap(upstreamRequestHeaders(req.headers));
        headers.h['host'] = backendAuthority(plan.backend, config.namespace);
        headers.h['traceparent'] = formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags);
        if (traceMode === 'trust' && incoming.kind === 'found' && incoming.context.traceState !== undefined) headers.h['tracestate'] = incoming.context.traceState;
        headers.h[REQUEST_ID] = requestId;
        const xff = req.headers['x-forwarded-for'];
        const peer = req.socket.remoteAddress ?? '';
        headers.h['x-forwarded-for'] = typeof xff === 'string' && xff !== '' && traceMode === 'trust' ? `${xff}, ${peer}` : peer;
        headers.h['x-forwarded-proto'] = scheme;
        headers.h['x-forwarded-host'] = req.headers.host ?? host;
        for (const m of plan.requestHeaders) applyHeaderModifier(m, headers);
        // A body-less request whose pooled connection to the outbound listener turns out dead
        // (closed by its idle timeout as this request was written) is sent once more, on a new
        // connection; nothing reached the mesh, so nothing is sent twice.
        const bodyless = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined;
        let upstream: ClientRequest | undefined;
        let timer: NodeJS.Timeout | undefined;
        const ms = plan.requestTimeoutMs;
        if (ms !== undefined && ms > 0) {
          timer = setTimeout(() => {
            upstream?.destroy();
            fail(req, res, e, new ProxyError(MESH_ERROR.timeout, `no complete answer within ${ms} ms, the timeouts.request of ${plan.rule.route} (${plan.rule.rule})`, { details: { route: plan.rule.route, rule: plan.rule.rule } }));
          }, ms);
        }
        const send = (resent: boolean): void => {
          const up = httpRequest({ host: '127.0.0.1', port: sidecar.outboundPort, method, path: plan.target ?? target, headers: headers.h, agent });
          upstream = up;
          let answered = false;
          up.on('error', (err: NodeJS.ErrnoException) => {
            if (e.done) return;
            if (!answered && !resent && bodyless && up.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
              send(true);
              return;
            }
            clearTimeout(timer);
            fail(req, res, e, upstreamError(err, `the gateway's own outbound listener 127.0.0.1:${sidecar.outboundPort}`));
          });
          up.on('response', (answer) => {
            answered = true;
            const out = new HeaderMap(downstreamResponseHeaders(answer.headers));
            for (const m of plan.responseHeaders) applyHeaderModifier(m, out);
            out.h['traceresponse'] = traceresponseFor(span.spanContext(), incoming);
            res.writeHead(answer.statusCode ?? 502, out.h);
            answer.on('data', (c: Buffer) => {
              e.bytesOut += c.length;
            });
            answer.pipe(res);
            answer.on('end', () => {
              clearTimeout(timer);
              finish(req, res, e, answer.statusCode ?? 502, undefined, false);
            });
            answer.on('error', () => res.destroy());
          });
          if (bodyless) up.end();
          else req.pipe(up);
        };
        req.on('data', (c: Buffer) => {
          e.bytesIn += c.length;
        });
        send(false);
        res.on('close', () => {
          if (!res.writableFinished) upstream?.destroy();
        });
      });
    };

    // One server per Gateway port; the limits are the sidecar's (--request-headers-timeout,
    // --idle-timeout, --max-downstream-connections, --tls-handshake-timeout).
    const servers: HttpServer[] = [];
    // node checks request-head deadlines on a timer (30 s by default): often enough for the flag to hold.
    const checkEveryMs = Math.max(50, Math.min(1000, Math.floor(limits.requestHeadersTimeoutMs / 4)));
    const bound = new Map<number, number>();
    for (const p of first.ports) {
      const scheme = p.protocol === 'HTTPS' ? 'https' : 'http';
      const onRequest = (req: IncomingMessage, res: ServerResponse): void => handle(req, res, p.port, scheme);
      let server: HttpServer;
      if (p.protocol === 'HTTPS') {
        const port = p.port;
        const certificateFor = (servername: string): string | undefined => {
          // The live Gateway decides (hostnames may change on reload); certificates are fixed at start.
          const live = watched.current().ports.find((x) => x.port === port);
          const l = live === undefined ? undefined : listenerFor(live, normalizeHost(servername));
          return l?.tls?.certificateRefs[0]?.name;
        };
        // A client that sends no SNI gets the catch-all listener's certificate, if there is one.
        const fallbackName = certificateFor('');
        const fallback = fallbackName === undefined ? undefined : certs.current().pems.get(fallbackName);
        server = createHttpsServer(
          {
            connectionsCheckingInterval: checkEveryMs,
            ...(fallback === undefined ? {} : { cert: fallback.cert, key: fallback.key }),
            handshakeTimeout: limits.tlsHandshakeTimeoutMs,
            ALPNProtocols: ['http/1.1'],
            SNICallback: (servername, cb) => {
              const name = certificateFor(servername);
              const ctx = name === undefined ? undefined : certs.current().contexts.get(name);
              if (ctx === undefined) cb(new Error(`unknown_sni: no certificate for "${servername}" on port ${port}`));
              else cb(null, ctx);
            },
          },
          onRequest,
        );
        if (fallbackName !== undefined) {
          const tlsServer = server as HttpsServer;
          certs.subscribe((next) => {
            const pem = next.pems.get(fallbackName);
            if (pem !== undefined) tlsServer.setSecureContext({ cert: pem.cert, key: pem.key });
          });
        }
        server.on('tlsClientError', (err: Error) => handshakeFailures.inc({ port: String(port), reason: handshakeReason(err) }));
      } else {
        server = createHttpServer({ connectionsCheckingInterval: checkEveryMs }, onRequest);
      }
      server.headersTimeout = limits.requestHeadersTimeoutMs;
      server.requestTimeout = 0;
      server.keepAliveTimeout = limits.idleTimeoutMs;
      server.maxConnections = limits.maxConnections;
      server.on('drop', () => refusals.inc({ reason: 'concurrency' }));
      server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
        if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') refusals.inc({ reason: 'deadline' });
        if (socket.writable && err.code !== 'ECONNRESET') socket.end(err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        else socket.destroy();
      });
      servers.push(server);
      const local = options.listenerPorts?.[p.port] ?? p.port;
      bound.set(p.port, await listen(server, local, config.bindAddress, `Gateway ${gatewayId} port ${p.port} (${p.protocol})`));
    }
    watched.subscribe((next) => {
      const missing = next.ports.filter((p) => !bound.has(p.port)).map((p) => p.port);
      if (missing.length > 0) logger.warn('the Gateway now declares ports this gateway did not bind at start; they take effect after a restart', { ports: missing });
    });
    cleanups.push(async () => {
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
      for (const s of servers) s.closeIdleConnections();
      const deadline = Date.now() + config.drainTimeoutMs;
      while (inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const s of servers) s.closeAllConnections();
      await closed;
    });
    logger.info('gateway serving', { gateway: gatewayId, ports: Object.fromEntries(bound), edgeTraceContext: traceMode, outboundPort: sidecar.outboundPort });

    let closing: Promise<void> | undefined;
    return {
      ports: bound,
      sidecar,
      gateway: gatewayId,
      reload: async () => {
        await Promise.all([watched.reload(), certs.reload()]);
      },
      flush: async () => {
        await Promise.all([telemetry.forceFlush(), sidecar.flush()]);
      },
      close() {
        closing ??= cleanup();
        return closing;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
