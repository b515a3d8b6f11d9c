// Test support for the CA and for components that need mesh certificates in their tests: a
// real CA and gRPC server on a free loopback port with bootstrap tokens, plus small checks.

import { X509Certificate } from 'node:crypto';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { bootstrapTokenAuthenticator } from './authn/bootstrap-token.ts';
import type { Authenticator } from './authn/authenticator.ts';
import { CaClient, type CaClientTransport } from '../../common/ca/client.ts';
import { createCertificateAuthority, type CertificateAuthority, type CertificateAuthorityOptions } from './pki/authority.ts';
import { startCaServer, type CaServer, type CaServerOptions } from './server/server.ts';

export const TEST_TRUST_DOMAIN = 'cluster.local';

export interface TestCa {
  readonly ca: CertificateAuthority;
  readonly server: CaServer;
  /** Bootstrap token of `ns/sa`, e.g. `token('default', 'web')`. Any pair works. */
  token(namespace: string, serviceAccount: string): string;
  /** A client over TLS (verifying the server's SPIFFE ID) with the token of `ns/sa`. */
  client(namespace: string, serviceAccount: string, transport?: CaClientTransport): CaClient;
  close(): Promise<void>;
}

const WORKLOADS = [
  ['default', 'web'],
  ['default', 'api'],
  ['payments', 'ledger'],
] as const;

/**
 * Starts a CA (in-memory self-signed root unless `caOptions.source` says otherwise) and its
 * gRPC server on 127.0.0.1:0, with bootstrap tokens for default/web, default/api and
 * payments/ledger placed first in the authenticator list.
 */
export async function startTestCa(
  options: {
    readonly caOptions?: Partial<CertificateAuthorityOptions>;
    readonly server?: Partial<CaServerOptions>;
    readonly extraAuthenticators?: readonly Authenticator[];
  } = {},
): Promise<TestCa> {
  const ca = await createCertificateAuthority({ trustDomain: TEST_TRUST_DOMAIN, ...options.caOptions });
  const tokens = new Map<string, { namespace: string; serviceAccount: string }>();
  const tokenOf = (ns: string, sa: string): string => `test-token-${ns}-${sa}-0123456789`;
  for (const [namespace, serviceAccount] of WORKLOADS) tokens.set(tokenOf(namespace, serviceAccount), { namespace, serviceAccount });
  const server = await startCaServer({
    ca,
    port: 0,
    authenticators: [bootstrapTokenAuthenticator(ca.trustDomain, tokens), ...(options.extraAuthenticators ?? [])],
    ...options.server,
  });
  const clients: CaClient[] = [];
  return {
    ca,
    server,
    token: tokenOf,
    client(namespace, serviceAccount, transport) {
      const c = new CaClient({
        address: server.address,
        transport: transport ?? {
          kind: 'tls',
          rootCertsPem: ca.trustBundle().pem,
          ...(server.serverSpiffeId !== undefined ? { serverSpiffeId: server.serverSpiffeId } : {}),
        },
        token: tokenOf(namespace, serviceAccount),
      });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.close();
      await server.close();
      ca.close();
    },
  };
}

/** Polls `check` every 20ms until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function pollUntil<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

/** True when `leaf` is issued and signed by one of the PEM roots in `rootsPem`. */
export function issuedByOneOf(leafPem: string, rootsPem: readonly string[]): boolean {
  const leaf = new X509Certificate(leafPem);
  return rootsPem.some((pem) => {
    const root = new X509Certificate(pem);
    return leaf.checkIssued(root) && leaf.verify(root.publicKey);
  });
}

/**
 * Runs a real TLS handshake on loopback: a server with `server` material, a client trusting
 * `trustPem` and presenting `client` material; both sides require and verify the peer. Resolves
 * with the error message, or undefined when both sides accepted.
 */
export async function mtlsHandshake(
  server: { readonly certChainPem: string; readonly privateKeyPem: string },
  client: { readonly certChainPem: string; readonly privateKeyPem: string },
  trustPem: string,
): Promise<string | undefined> {
  const srv = createServer({
    cert: server.certChainPem,
    key: server.privateKeyPem,
    ca: trustPem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  srv.on('secureConnection', (s: TLSSocket) => s.end('ok'));
  srv.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  try {
    return await new Promise<string | undefined>((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port,
        cert: client.certChainPem,
        key: client.privateKeyPem,
        ca: trustPem,
        // Mesh peers are checked by SPIFFE ID, not host name; the chain is still verified.
        checkServerIdentity: () => undefined,
      });
      socket.on('data', () => {
        socket.end();
        resolve(undefined);
      });
      socket.on('error', (err) => resolve(err.message));
      socket.on('end', () => resolve('connection closed before the server answered'));
    });
  } finally {
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
}
