// SPIFFE workload identities of the form `spiffe://<trust-domain>/ns/<namespace>/sa/<sa>`:
// strict parsing and formatting, shared by the CA (what it grants) and sidecars (what a peer
// proved in its certificate).

import { X509Certificate } from 'node:crypto';
import { CA_ERROR, CaError } from './ca/errors.ts';

export interface SpiffeId {
  /** Lowercase trust domain, e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** Kubernetes namespace (DNS label). */
  readonly namespace: string;
  /** Kubernetes service account (DNS subdomain). */
  readonly serviceAccount: string;
}

// SPIFFE ID spec §2.1: trust domain is [a-z0-9.-_], at most 255 characters.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
// Kubernetes: namespaces are RFC 1123 labels, service accounts RFC 1123 subdomains.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SPIFFE_PREFIX = 'spiffe://';
const MAX_URI_LENGTH = 2048;

export function isValidTrustDomain(trustDomain: string): boolean {
  return TRUST_DOMAIN.test(trustDomain) && !/^[.]|[.]$|\.\./.test(trustDomain);
}

export function isValidNamespace(namespace: string): boolean {
  return DNS_LABEL.test(namespace);
}

export function isValidServiceAccount(serviceAccount: string): boolean {
  return serviceAccount.length <= 253 && DNS_SUBDOMAIN.test(serviceAccount);
}

/**
 * Parses a workload SPIFFE ID. Throws CaError `SPIFFE_ID_INVALID` for anything that is not
 * exactly `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`: no port, user info, query, fragment,
 * percent-encoding, upper case, empty or extra path segments.
 */
export function parseSpiffeId(uri: string): SpiffeId {
  const id = tryParseSpiffeId(uri);
  if (!id) {
    throw new CaError(
      CA_ERROR.spiffeIdInvalid,
      `"${uri.slice(0, 200)}" is not a workload SPIFFE ID; expected spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount> in lower case`,
    );
  }
  return id;
}

/** Like parseSpiffeId, but returns undefined instead of throwing. */
export function tryParseSpiffeId(uri: string): SpiffeId | undefined {
  if (uri.length > MAX_URI_LENGTH || !uri.startsWith(SPIFFE_PREFIX)) return undefined;
  const rest = uri.slice(SPIFFE_PREFIX.length);
  const parts = rest.split('/');
  if (parts.length !== 5) return undefined;
  const [trustDomain, nsKey, namespace, saKey, serviceAccount] = parts as [string, string, string, string, string];
  if (nsKey !== 'ns' || saKey !== 'sa') return undefined;
  if (!isValidTrustDomain(trustDomain) || !isValidNamespace(namespace) || !isValidServiceAccount(serviceAccount)) {
    return undefined;
  }
  return { trustDomain, namespace, serviceAccount };
}

/** Formats an identity; throws `SPIFFE_ID_INVALID` if any part would not parse back. */
export function formatSpiffeId(id: SpiffeId): string {
  const uri = `${SPIFFE_PREFIX}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
  if (!tryParseSpiffeId(uri)) {
    throw new CaError(
      CA_ERROR.spiffeIdInvalid,
      `cannot form a SPIFFE ID from trust domain "${id.trustDomain}", namespace "${id.namespace}" and service account "${id.serviceAccount}"`,
    );
  }
  return uri;
}

export function spiffeIdEquals(a: SpiffeId, b: SpiffeId): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}

/**
 * URI SANs of a certificate, from node:crypto's `subjectAltName` text. Node quotes a value that
 * contains a separator as a JSON string; such values are decoded, then left to the caller to
 * validate (they can never be a valid SPIFFE ID).
 */
export function uriSans(cert: X509Certificate): string[] {
  const text = cert.subjectAltName;
  if (!text) return [];
  const out: string[] = [];
  // Entries are `TYPE:value` or `TYPE:"json"`, separated by ", ".
  const entry = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = entry.exec(text); m !== null; m = entry.exec(text)) {
    if (m[1] !== 'URI') continue;
    const raw = m[2] ?? '';
    out.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return out;
}

/**
 * The workload identity a certificate proves: its single URI SAN, parsed strictly. For sidecars
 * verifying a peer after the TLS handshake has verified the chain against the trust bundle.
 * Throws `SPIFFE_ID_INVALID` when there is no URI SAN, more than one, or it is not a SPIFFE ID.
 */
export function spiffeIdFromCertificate(cert: X509Certificate | string): SpiffeId {
  const x = typeof cert === 'string' ? new X509Certificate(cert) : cert;
  const uris = uriSans(x);
  if (uris.length !== 1) {
    throw new CaError(
      CA_ERROR.spiffeIdInvalid,
      `a workload certificate must carry exactly one URI SAN, this one has ${uris.length}`,
    );
  }
  return parseSpiffeId(uris[0] as string);
}
