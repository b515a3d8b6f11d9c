import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCaError } from '../../../common/ca/errors.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../pki/authority.ts';
import { bearerToken, firstOf, type Authenticator, type CallMetadata } from './authenticator.ts';
import { bootstrapTokenAuthenticator, bootstrapTokenAuthenticatorFromFile } from './bootstrap-token.ts';
import { kubernetesTokenAuthenticator, TOKEN_REVIEW_PATH } from './kubernetes-token.ts';

const TD = 'cluster.local';
const bearer = (token: string): CallMetadata => ({ authorization: [`Bearer ${token}`] });

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isCaError(err), `expected a CaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

void describe('bearerToken', () => {
  void it('reads the token of an authorization: Bearer entry, scheme case-insensitive', () => {
    assert.equal(bearerToken(bearer('abc')), 'abc');
    assert.equal(bearerToken({ authorization: ['bearer   xyz'] }), 'xyz');
    assert.equal(bearerToken({ authorization: ['Basic dXNlcjpwYXNz'] }), undefined);
    assert.equal(bearerToken({}), undefined);
  });
});

void describe('bootstrap tokens', () => {
  const auth = bootstrapTokenAuthenticator(TD, {
    'web-token-0123456789abcdef': { namespace: 'default', serviceAccount: 'web' },
    'ledger-token-0123456789abcd': { namespace: 'payments', serviceAccount: 'ledger' },
  });

  void it('maps a known token to its identity', async () => {
    const caller = await auth.authenticate(bearer('ledger-token-0123456789abcd'));
    assert.deepEqual(caller.spiffeId, { trustDomain: TD, namespace: 'payments', serviceAccount: 'ledger' });
    assert.equal(caller.authenticator, 'bootstrap-token');
  });

  void it('refuses unknown, prefix and missing tokens without echoing them', async () => {
    await rejectsWith(auth.authenticate(bearer('web-token-0123456789abcdeX')), 'AUTH_FAILED');
    await rejectsWith(auth.authenticate(bearer('web-token-0123456789abcde')), 'AUTH_FAILED');
    await rejectsWith(auth.authenticate({}), 'AUTH_FAILED', /authorization: Bearer/);
    await assert.rejects(auth.authenticate(bearer('secret-guess-000000000')), (err: Error) => !err.message.includes('secret-guess'));
  });

  void it('refuses weak tokens and bad grants at configuration time', () => {
    assert.throws(
      () => bootstrapTokenAuthenticator(TD, { short: { namespace: 'default', serviceAccount: 'web' } }),
      (err) => isCaError(err, 'CA_CONFIG_INVALID'),
    );
    assert.throws(
      () => bootstrapTokenAuthenticator(TD, { 'long-enough-token-123': { namespace: 'Default', serviceAccount: 'web' } }),
      (err) => isCaError(err, 'CA_CONFIG_INVALID'),
    );
  });

  void it('reads a tokens file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tracemesh-tokens-'));
    try {
      const file = join(dir, 'tokens.json');
      await writeFile(file, JSON.stringify({ 'file-token-0123456789abc': { namespace: 'default', serviceAccount: 'api' } }));
      const fromFile = await bootstrapTokenAuthenticatorFromFile(TD, file);
      assert.equal((await fromFile.authenticate(bearer('file-token-0123456789abc'))).spiffeId.serviceAccount, 'api');
      await writeFile(file, '{"x": 1}');
      await rejectsWith(bootstrapTokenAuthenticatorFromFile(TD, file), 'CA_CONFIG_INVALID', /tokens\.json/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A fake kube-apiserver that answers TokenReviews in the real JSON shape, over HTTPS. */
interface FakeApiServer {
  readonly url: string;
  readonly caPem: string;
  readonly requests: { method: string; path: string; authorization: string | undefined; body: unknown }[];
  /** How to answer the next reviews: token → status, or a raw HTTP status. */
  respond: (spec: { token: string; audiences?: string[] }) => { httpStatus?: number; status?: unknown; hang?: boolean };
  close(): Promise<void>;
}

async function startFakeApiServer(ca: CertificateAuthority): Promise<FakeApiServer> {
  const serving = await ca.issueServingCertificate({
    identity: { trustDomain: TD, namespace: 'kube-system', serviceAccount: 'kube-apiserver' },
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const fake: Omit<FakeApiServer, 'url' | 'close'> = {
    caPem: ca.trustBundle().pem,
    requests: [],
    respond: () => ({ status: { authenticated: false } }),
  };
  const server: Server = createServer(
    { cert: serving.certChainPem.slice(0, -1).join(''), key: serving.privateKeyPem },
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as {
          apiVersion: string;
          kind: string;
          spec: { token: string; audiences?: string[] };
        };
        fake.requests.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, body });
        if (req.method !== 'POST' || req.url !== TOKEN_REVIEW_PATH) {
          res.writeHead(404).end();
          return;
        }
        const answer = fake.respond(body.spec);
        if (answer.hang) return;
        if (answer.httpStatus) {
          res.writeHead(answer.httpStatus, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: answer.httpStatus }));
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            kind: 'TokenReview',
            apiVersion: 'authentication.k8s.io/v1',
            metadata: { creationTimestamp: null },
            spec: body.spec,
            status: answer.status,
          }),
        );
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(fake, {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

void describe('Kubernetes TokenReview', () => {
  let ca: CertificateAuthority;
  let api: FakeApiServer;
  let auth: Authenticator;
  let ownTokenReads = 0;

  before(async () => {
    ca = await createCertificateAuthority({ trustDomain: TD });
    api = await startFakeApiServer(ca);
    auth = kubernetesTokenAuthenticator({
      trustDomain: TD,
      apiServerUrl: api.url,
      caCertPem: api.caPem,
      credentials: () => `control-plane-token-${++ownTokenReads}`,
      audiences: ['tracemesh-ca'],
      timeoutMs: 500,
    });
  });
  after(async () => {
    await api.close();
    ca.close();
  });

  void it('accepts an authenticated service-account token for the audience', async () => {
    api.respond = (spec) =>
      spec.token === 'pod-jwt'
        ? {
            status: {
              authenticated: true,
              user: {
                username: 'system:serviceaccount:payments:ledger',
                uid: '8c2f0a3e-1b1e-4b8f-9c53-3f1b2b8a9f10',
                groups: ['system:serviceaccounts', 'system:serviceaccounts:payments', 'system:authenticated'],
                extra: { 'authentication.kubernetes.io/pod-name': ['ledger-7d9f'] },
              },
              audiences: ['tracemesh-ca'],
            },
          }
        : { status: { authenticated: false, error: 'invalid bearer token' } };
    const before = api.requests.length;
    const caller = await auth.authenticate(bearer('pod-jwt'));
    assert.deepEqual(caller.spiffeId, { trustDomain: TD, namespace: 'payments', serviceAccount: 'ledger' });
    const req = api.requests[before]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/apis/authentication.k8s.io/v1/tokenreviews');
    assert.match(req.authorization ?? '', /^Bearer control-plane-token-\d+$/);
    assert.deepEqual(req.body, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: 'pod-jwt', audiences: ['tracemesh-ca'] },
    });
    const reads = ownTokenReads;
    await auth.authenticate(bearer('pod-jwt'));
    assert.equal(ownTokenReads, reads + 1, 'the control plane token is re-read per review');
  });

  void it('refuses unauthenticated tokens, other audiences and non-service-account users', async () => {
    api.respond = () => ({ status: { authenticated: false, error: 'token has expired' } });
    await rejectsWith(auth.authenticate(bearer('old-jwt')), 'AUTH_FAILED', /token has expired/);
    api.respond = () => ({
      status: { authenticated: true, user: { username: 'system:serviceaccount:default:web' }, audiences: ['https://kubernetes.default.svc'] },
    });
    await rejectsWith(auth.authenticate(bearer('jwt')), 'AUTH_FAILED', /audience/);
    api.respond = () => ({ status: { authenticated: true, user: { username: 'alice@example.com' }, audiences: ['tracemesh-ca'] } });
    await rejectsWith(auth.authenticate(bearer('jwt')), 'AUTH_FAILED', /not a service account/);
    api.respond = () => ({
      status: { authenticated: true, user: { username: 'system:serviceaccount:default:web:extra' }, audiences: ['tracemesh-ca'] },
    });
    await rejectsWith(auth.authenticate(bearer('jwt')), 'AUTH_FAILED');
    await rejectsWith(auth.authenticate({}), 'AUTH_FAILED');
  });

  void it('reports AUTH_UNAVAILABLE when the API server cannot answer', async () => {
    api.respond = () => ({ httpStatus: 403 });
    await rejectsWith(auth.authenticate(bearer('jwt')), 'AUTH_UNAVAILABLE', /auth-delegator/);
    api.respond = () => ({ httpStatus: 500 });
    await rejectsWith(auth.authenticate(bearer('jwt')), 'AUTH_UNAVAILABLE');
    api.respond = () => ({ hang: true });
    await rejectsWith(auth.authenticate(bearer('jwt')), 'AUTH_UNAVAILABLE', /500ms/);

    const untrusted = kubernetesTokenAuthenticator({ trustDomain: TD, apiServerUrl: api.url, credentials: 'x' });
    await rejectsWith(untrusted.authenticate(bearer('jwt')), 'AUTH_UNAVAILABLE', /certificate/);
  });

  void it('is tried after bootstrap tokens; AUTH_UNAVAILABLE wins over AUTH_FAILED', async () => {
    const chain = firstOf([
      bootstrapTokenAuthenticator(TD, { 'local-token-0123456789ab': { namespace: 'default', serviceAccount: 'web' } }),
      auth,
    ]);
    assert.equal((await chain.authenticate(bearer('local-token-0123456789ab'))).authenticator, 'bootstrap-token');
    api.respond = () => ({ status: { authenticated: true, user: { username: 'system:serviceaccount:default:api' }, audiences: ['tracemesh-ca'] } });
    assert.equal((await chain.authenticate(bearer('pod-jwt'))).spiffeId.serviceAccount, 'api');
    api.respond = () => ({ status: { authenticated: false } });
    await rejectsWith(chain.authenticate(bearer('pod-jwt')), 'AUTH_FAILED', /bootstrap-token.*kubernetes/);
    api.respond = () => ({ httpStatus: 503 });
    await rejectsWith(chain.authenticate(bearer('pod-jwt')), 'AUTH_UNAVAILABLE');
  });
});
