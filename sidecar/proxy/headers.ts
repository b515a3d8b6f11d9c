// Header rules of the proxy: hop-by-hop headers stay on their hop (RFC 9110 §7.6.1), trace
// headers are rewritten as W3C, and the request's authority is parsed into service and port.

import { EXPECTED_TIMEOUT_HEADER } from '../chain/hop.ts';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { TRACE_HEADERS } from '../../common/trace-context.ts';

/** Set by the outbound sidecar so that the inbound one can label metrics by source workload. */
export const SOURCE_WORKLOAD_HEADER = 'x-tracemesh-source-workload';
export const REQUEST_ID_HEADER = 'x-request-id';
/**
 * Envoy's header naming the verified peer for the app (`By=<this workload>;URI=<peer>`). Set by
 * the inbound sidecar over mTLS, and stripped from anything a client sends so it cannot be forged.
 */
export const CLIENT_CERT_HEADER = 'x-forwarded-client-cert';
/**
 * Set by the outbound sidecar to `HTTP/2` when the app made the request over HTTP/2, so that
 * the inbound sidecar (whose hop from the peer is HTTP/2 either way over mTLS) can call the app
 * the same way (`--app-protocol auto`). Linkerd's `l5d-orig-proto` plays this part. Stripped
 * from client input and never passed to the app.
 */
export const ORIG_PROTO_HEADER = 'x-tracemesh-orig-proto';
export const ORIG_PROTO_H2 = 'HTTP/2';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
  // Node already answered `100-continue` to the client; the upstream must not be asked again.
  'expect',
]);

/** Headers the proxy writes itself on the upstream request. */
const REWRITTEN = new Set([...TRACE_HEADERS, SOURCE_WORKLOAD_HEADER, REQUEST_ID_HEADER, CLIENT_CERT_HEADER, ORIG_PROTO_HEADER, EXPECTED_TIMEOUT_HEADER]);

/** Extra hop-by-hop names listed in a `Connection` header (`Connection: close, x-foo`). */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const raw = typeof value === 'string' ? value : value.join(',');
  // The common cases carry no extra names; skip the Set.
  if (raw === 'keep-alive' || raw === 'close' || raw === 'Keep-Alive' || raw === 'Close') return undefined;
  const out = new Set<string>();
  for (const t of raw.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '') out.add(name);
  }
  return out;
}

const COLON = 0x3a;

/**
 * The request headers to send upstream: everything except hop-by-hop and trace headers
 * (the caller adds `traceparent`, `tracestate`, `x-request-id`). `baggage` passes through.
 * HTTP/2 pseudo-headers (`:path`, …) never pass; for an HTTP/2 upstream (`h2`) `host` is
 * left out too, because the caller sends the authority as `:authority` (RFC 9113 §8.3.1).
 */
export function upstreamRequestHeaders(src: IncomingHttpHeaders, h2 = false): OutgoingHttpHeaders {
  const extra = connectionTokens(src.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in src) {
    if (name.charCodeAt(0) === COLON || HOP_BY_HOP.has(name) || REWRITTEN.has(name) || extra?.has(name) === true) continue;
    if (h2 && name === 'host') continue;
    out[name] = src[name];
  }
  return out;
}

/** The response headers to send downstream: everything except hop-by-hop headers and `:status`. */
export function downstreamResponseHeaders(src: IncomingHttpHeaders): OutgoingHttpHeaders {
  const extra = connectionTokens(src.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in src) {
    if (name.charCodeAt(0) === COLON || HOP_BY_HOP.has(name) || extra?.has(name) === true) continue;
    out[name] = src[name];
  }
  return out;
}

/** A request authority split into lowercase host and port (undefined when not given). */
export function splitAuthority(authority: string): { host: string; port: number | undefined } {
  let host = authority;
  let port: number | undefined;
  const colon = authority.lastIndexOf(':');
  // `[::1]:80` has its port after the bracket; a bare IPv6 literal has no port.
  if (colon !== -1 && colon > authority.lastIndexOf(']')) {
    const p = authority.slice(colon + 1);
    if (/^\d{1,5}$/.test(p)) port = Number(p);
    host = authority.slice(0, colon);
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host.toLowerCase(), port };
}

const K8S_SERVICE_HOST = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.[a-z0-9-]+\.svc(?:\.cluster\.local)?\.?$/;

/**
 * The logical service named by a host: `b`, `b:80`, and the Kubernetes forms
 * `b.<ns>.svc` and `b.<ns>.svc.cluster.local` all name `b`.
 */
export function serviceOfHost(host: string): string {
  if (host.indexOf('.') === -1) return host;
  const m = K8S_SERVICE_HOST.exec(host);
  return m?.[1] ?? (host.endsWith('.') ? host.slice(0, -1) : host);
}

/**
 * Absolute-form targets (`GET http://b/x`) come from apps that use the sidecar as an HTTP proxy:
 * their authority and origin-form target, or undefined for anything but an http: URL.
 */
export function absoluteForm(url: string): { authority: string; target: string } | undefined {
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:') return undefined;
    return { authority: u.host, target: u.pathname + u.search };
  } catch {
    return undefined;
  }
}
