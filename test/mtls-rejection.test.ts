// The rejection matrix of a live inbound sidecar in STRICT mode, driven by the real `curl` and
// `openssl s_client` binaries with certificates made by test/certs/make-certs.sh: plaintext, no
// client certificate, another CA, an expired certificate, a root that was retired from the
// trust bundle, an identity outside the trust domain or without a SPIFFE ID, and an identity
// an AuthorizationPolicy denies. Each refusal must carry a clear reason and leave the expected
// error span; a valid peer gets through.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR, MESH_ERROR_HEADER } from '../common/semconv.ts';
import { startServer, waitFor, type TestServer, type TestSidecar, startTestSidecar } from '../sidecar/testing/harness.ts';
import { TLS_FAILURE_KIND, TLS_HANDSHAKE_SPAN } from '../sidecar/telemetry/tls-failures.ts';

const MAKE_CERTS = fileURLToPath(new URL('./certs/make-certs.sh', import.meta.url));
const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

let dir: string;
let app: TestServer;
let b: TestSidecar;
const f = (name: string): string => join(dir, name);

interface CurlResult {
  readonly code: number;
  readonly status: number;
  readonly headers: string;
  readonly body: string;
  readonly stderr: string;
}

/** Runs the real curl; `cert` names a client certificate pair from make-certs.sh. */
function curl(path: string, o: { cert?: string; http1?: boolean; plaintext?: boolean; headers?: Record<string, string> } = {}): Promise<CurlResult> {
  const port = b.sidecar.inboundPort;
  const args = ['-sS', '--max-time', '10', '-D', '-', '-w', '\n%{http_code}'];
  if (o.plaintext === true) args.push(`http://127.0.0.1:${port}${path}`);
  else {
    args.push('--cacert', f('root-a.crt'));
    if (o.cert !== undefined) args.push('--cert', f(`${o.cert}.crt`), '--key', f(`${o.cert}.key`));
    args.push(o.http1 === true ? '--http1.1' : '--http2');
    args.push(`https://127.0.0.1:${port}${path}`);
  }
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  return new Promise((resolve) => {
    execFile('curl', args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      const lines = stdout.trimEnd().split('\n');
      const status = Number(lines.pop() ?? 0);
      const text = lines.join('\n');
      const split = text.indexOf('\r\n\r\n');
      resolve({ code, status, headers: split === -1 ? text : text.slice(0, split), body: split === -1 ? '' : text.slice(split + 4), stderr });
    });
  });
}

/** Runs the real `openssl s_client`, sends one HTTP/1.1 request, returns everything it printed. */
function sClient(cert: string | undefined, path: string): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${b.sidecar.inboundPort}`, '-CAfile', f('root-a.crt'), '-verify_return_error', '-quiet', '-no_ign_eof'];
  if (cert !== undefined) args.push('-cert', f(`${cert}.crt`), '-key', f(`${cert}.key`));
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    // -no_ign_eof: s_client leaves when stdin ends; the server closes after its answer anyway.
    child.stdin.write(`GET ${path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n`);
    setTimeout(() => child.stdin.end(), 1500).unref();
  });
}

async function spans(): Promise<ReadableSpan[]> {
  return b.finishedSpans();
}

/** The handshake-failure spans recorded after `since` of them already existed. */
async function newHandshakeSpan(since: number, kind: string): Promise<ReadableSpan> {
  return waitFor(async () => {
    const all = (await spans()).filter((s) => s.name === TLS_HANDSHAKE_SPAN);
    return all.slice(since).find((s) => s.attributes[TLS_FAILURE_KIND] === kind);
  }, `a "${TLS_HANDSHAKE_SPAN}" span of kind ${kind}`);
}

async function handshakeSpanCount(): Promise<number> {
  return (await spans()).filter((s) => s.name === TLS_HANDSHAKE_SPAN).length;
}

function requestSpan(path: string): Promise<ReadableSpan> {
  return waitFor(async () => (await spans()).find((s) => s.attributes[ATTR.urlPath] === path && s.kind === SpanKind.SERVER), `SERVER span of ${path}`);
}

function assertHandshakeSpan(span: ReadableSpan, reason: RegExp, o: { peerKnown?: boolean } = {}): void {
  assert.equal(span.kind, SpanKind.SERVER);
  assert.equal(span.parentSpanContext, undefined, 'the request never arrived: a span of its own trace');
  assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.tlsHandshake);
  if (o.peerKnown !== false) {
    assert.equal(span.attributes[ATTR.networkPeerAddress], '127.0.0.1');
    assert.equal(typeof span.attributes[ATTR.networkPeerPort], 'number');
  }
  assert.equal(span.status.code, SpanStatusCode.ERROR);
  assert.match(span.status.message ?? '', reason);
  assert.match(String(span.events.find((e) => e.name === 'exception')?.attributes?.['exception.message']), reason);
}

function errorOf(body: string): { code: string; message: string; policy?: string | null; principal?: string | null } {
  return (JSON.parse(body) as { error: { code: string; message: string; policy?: string | null; principal?: string | null } }).error;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-mtls-'));
  execFileSync('bash', [MAKE_CERTS, dir], { stdio: 'ignore' });
  // Mid-rotation: both the current root and the one about to be retired are trusted.
  await copyFile(f('bundle.pem'), f('trust.pem'));
  await writeFile(
    f('policy.yaml'),
    [
      'apiVersion: security.tracemesh.io/v1',
      'kind: AuthorizationPolicy',
      'metadata: {name: deny-ledger, namespace: default}',
      'spec:',
      '  action: DENY',
      '  rules:',
      '  - from:',
      '    - source: {principals: ["cluster.local/ns/payments/sa/ledger"]}',
      '',
    ].join('\n'),
  );
  app = await startServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ app: 'b', url: req.url }));
  });
  b = await startTestSidecar({
    service: 'b',
    appPort: app.port,
    tlsCertFile: f('server.crt'),
    tlsKeyFile: f('server.key'),
    trustBundleFile: f('trust.pem'),
    policyFiles: [f('policy.yaml')],
  });
});

after(async () => {
  await b.close();
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('mTLS rejection matrix (STRICT), real curl and openssl', () => {
  void it('a valid peer gets through, with its identity and the policy decision on the span', async () => {
    const r = await curl('/valid', { cert: 'client' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.status, 200);
    assert.match(r.headers, /^HTTP\/2 200/);
    assert.deepEqual(JSON.parse(r.body), { app: 'b', url: '/valid' });
    const span = await requestSpan('/valid');
    assert.equal(span.attributes[ATTR.meshPeerIdentity], 'spiffe://cluster.local/ns/default/sa/web');
    assert.equal(span.attributes[ATTR.meshTlsMode], 'mtls');
    assert.equal(span.attributes[ATTR.meshPolicyDecision], 'allow');
    assert.equal(span.attributes[ATTR.networkProtocolVersion], '2');
    assert.equal(span.attributes[ATTR.meshErrorCode], undefined);

    const h1 = await curl('/valid-h1', { cert: 'client', http1: true });
    assert.equal(h1.status, 200);
    const viaOpenssl = await sClient('client', '/valid-openssl');
    assert.match(viaOpenssl, /HTTP\/1\.1 200/);
  });

  void it('plaintext: refused in STRICT with a readable 403, and a PLAINTEXT_REFUSED span in the caller\'s trace', async () => {
    const r = await curl('/plain', { plaintext: true, headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    assert.equal(r.status, 403);
    assert.match(r.headers, new RegExp(`${MESH_ERROR_HEADER}: ${MESH_ERROR.plaintextRefused}`, 'i'));
    const err = errorOf(r.body);
    assert.equal(err.code, MESH_ERROR.plaintextRefused);
    assert.match(err.message, /mTLS required \(STRICT\)/);
    const span = await requestSpan('/plain');
    assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.plaintextRefused);
    assert.equal(span.attributes[ATTR.meshTlsMode], 'plaintext');
    assert.equal(span.spanContext().traceId, TRACE, 'linked to the caller by its traceparent');
    assert.equal(span.parentSpanContext?.spanId, PARENT);
    assert.equal(span.status.code, SpanStatusCode.ERROR);
  });

  void it('no client certificate: 403 "no client certificate" (curl over HTTP/2 and HTTP/1.1, openssl)', async () => {
    const since = await handshakeSpanCount();
    const r = await curl('/no-cert', { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    assert.equal(r.status, 403, r.stderr);
    assert.match(r.headers, new RegExp(`${MESH_ERROR_HEADER}: ${MESH_ERROR.tlsHandshake}`, 'i'));
    assert.equal(errorOf(r.body).code, MESH_ERROR.tlsHandshake);
    assert.match(errorOf(r.body).message, /no client certificate/);
    assertHandshakeSpan(await newHandshakeSpan(since, 'no_certificate'), /no client certificate/);
    // The request that did arrive on the refused connection is refused in its own trace too.
    const req = await requestSpan('/no-cert');
    assert.equal(req.attributes[ATTR.meshErrorCode], MESH_ERROR.tlsHandshake);
    assert.equal(req.spanContext().traceId, TRACE);

    const h1 = await curl('/no-cert-h1', { http1: true });
    assert.equal(h1.status, 403);
    assert.match(errorOf(h1.body).message, /no client certificate/);
    assert.match(await sClient(undefined, '/no-cert-openssl'), /HTTP\/1\.1 403[\s\S]*no client certificate/);
  });

  void it('a certificate from another CA: 403 "unable to verify", via openssl s_client and curl', async () => {
    const since = await handshakeSpanCount();
    const out = await sClient('client-other-ca', '/other-ca');
    assert.match(out, /HTTP\/1\.1 403/);
    assert.match(out, /TLS_HANDSHAKE_FAILED/);
    assert.match(out, /unable to verify the certificate/);
    const span = await newHandshakeSpan(since, 'untrusted');
    assertHandshakeSpan(span, /unable to verify the certificate: it is not issued by a root in the trust bundle/);
    assert.equal(span.attributes[ATTR.meshPeerIdentity], 'spiffe://cluster.local/ns/default/sa/web', 'the identity it claimed');

    const r = await curl('/other-ca-curl', { cert: 'client-other-ca' });
    assert.equal(r.status, 403);
    assert.match(errorOf(r.body).message, /unable to verify/);
  });

  void it('an expired certificate: 403 "certificate has expired"', async () => {
    const since = await handshakeSpanCount();
    const r = await curl('/expired', { cert: 'client-expired' });
    assert.equal(r.status, 403);
    assert.equal(errorOf(r.body).code, MESH_ERROR.tlsHandshake);
    assert.match(errorOf(r.body).message, /certificate has expired/);
    assertHandshakeSpan(await newHandshakeSpan(since, 'expired'), /certificate has expired \(CERT_HAS_EXPIRED\)/);
  });

  void it('identities outside the trust domain, or without a SPIFFE ID: 403 naming the problem', async () => {
    const since = await handshakeSpanCount();
    const td = await curl('/other-td', { cert: 'client-other-td' });
    assert.equal(td.status, 403);
    assert.match(errorOf(td.body).message, /spiffe:\/\/evil\.example\/ns\/default\/sa\/web is not in trust domain cluster\.local/);
    const none = await curl('/no-spiffe', { cert: 'client-no-spiffe' });
    assert.equal(none.status, 403);
    assert.match(errorOf(none.body).message, /exactly one URI SAN/);
    await newHandshakeSpan(since, 'bad_identity');
  });

  void it('a root retired from the trust bundle: accepted during the overlap, refused after', async () => {
    const before = await curl('/old-root-before', { cert: 'client-old-root' });
    assert.equal(before.status, 200, 'both roots are trusted during the rotation');

    const generation = b.sidecar.tls?.generation ?? -1;
    await copyFile(f('root-a.crt'), f('trust.pem')); // retire root-old
    await waitFor(() => ((b.sidecar.tls?.generation ?? -1) > generation ? true : undefined), 'the new trust bundle to be applied');
    const since = await handshakeSpanCount();
    const after = await curl('/old-root-after', { cert: 'client-old-root' });
    assert.equal(after.status, 403);
    assert.match(errorOf(after.body).message, /unable to verify the certificate/);
    assertHandshakeSpan(await newHandshakeSpan(since, 'untrusted'), /unable to verify the certificate/);
    const still = await curl('/valid-after-retire', { cert: 'client' });
    assert.equal(still.status, 200, 'certificates of the current root still pass');
  });

  void it('a client that does not trust this sidecar\'s certificate aborts the handshake; the sidecar records why', async () => {
    const since = await handshakeSpanCount();
    const port = b.sidecar.inboundPort;
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      // No --cacert: curl checks the sidecar against the system roots and sends an alert.
      execFile('curl', ['-sS', '--max-time', '10', '--cert', f('client.crt'), '--key', f('client.key'), `https://127.0.0.1:${port}/untrusting`], (err, _out, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stderr }),
      );
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate/i);
    const span = await newHandshakeSpan(since, 'handshake_error');
    // The peer address is recorded when the socket still has it (OpenSSL may have closed it already).
    assertHandshakeSpan(span, /the client aborted the handshake with alert "[a-z ]+": it does not trust this sidecar's certificate/, { peerKnown: false });
  });

  void it('an identity denied by an AuthorizationPolicy: 403 POLICY_DENIED naming the policy and the principal', async () => {
    const r = await curl('/pay', { cert: 'client-ledger', headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    assert.equal(r.status, 403);
    assert.match(r.headers, new RegExp(`${MESH_ERROR_HEADER}: ${MESH_ERROR.policyDenied}`, 'i'));
    const err = errorOf(r.body);
    assert.equal(err.code, MESH_ERROR.policyDenied);
    assert.equal(err.policy, 'default/deny-ledger');
    assert.equal(err.principal, 'spiffe://cluster.local/ns/payments/sa/ledger');
    assert.match(err.message, /deny-ledger/);
    const span = await requestSpan('/pay');
    assert.equal(span.attributes[ATTR.meshPolicyDecision], 'deny');
    assert.equal(span.attributes[ATTR.meshPolicyName], 'default/deny-ledger');
    assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.policyDenied);
    assert.equal(span.attributes[ATTR.meshPeerIdentity], 'spiffe://cluster.local/ns/payments/sa/ledger');
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.spanContext().traceId, TRACE);
    const line = b.accessLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['path'] === '/pay');
    assert.equal(line?.['policy'], 'default/deny-ledger');
    assert.equal(line?.['policy_decision'], 'deny');
    assert.equal(line?.['peer_identity'], 'spiffe://cluster.local/ns/payments/sa/ledger');
  });

  void it('counts every refused connection in tracemesh_tls_handshake_failures_total by reason', async () => {
    const text = await b.sidecar.registry.getSingleMetricAsString('tracemesh_tls_handshake_failures_total');
    for (const reason of ['no_certificate', 'untrusted', 'expired', 'bad_identity']) {
      assert.match(text, new RegExp(`direction="inbound",reason="${reason}"} [1-9]`), reason);
    }
  });
});
