// `tracemesh sidecar` with its CA flags against a real CA (startTestCa): two sidecars get their
// certificates from --ca-address with --ca-root-cert and a token file, then talk mTLS; the
// admin listener shows the identity; bad flag combinations and an unreachable CA fail clearly.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, silentLogger } from '../common/logger.ts';
import { startTestCa, type TestCa } from '../controlplane/ca/testing.ts';
import { runSidecar } from '../sidecar/main.ts';
import { startSidecar } from '../sidecar/sidecar.ts';
import { closedPort, httpRequest, startServer, waitFor, type TestServer } from '../sidecar/testing/harness.ts';

let ca: TestCa;
let dir: string;
let app: TestServer;
const stops: AbortController[] = [];
const runs: Array<Promise<number>> = [];

const local = ['--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--bind-address', '127.0.0.1', '--collector-endpoint', 'none', '--access-log', 'off'];

/** Starts `tracemesh sidecar` in-process; resolves with the ports from its start log line. */
async function run(argv: string[]): Promise<{ outboundPort: number; inboundPort: number; adminPort: number }> {
  const lines: string[] = [];
  const stop = new AbortController();
  stops.push(stop);
  runs.push(runSidecar(argv, { env: {}, logger: createLogger({}, 'info', (l) => lines.push(l)), signal: stop.signal, err: (t) => lines.push(t) }));
  const started = await waitFor(
    () => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'sidecar started'),
    `sidecar to start (log: ${lines.join('')})`,
    15_000,
  );
  return { outboundPort: started['outboundPort'] as number, inboundPort: started['inboundPort'] as number, adminPort: started['adminPort'] as number };
}

before(async () => {
  ca = await startTestCa();
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-ca-flags-'));
  await writeFile(join(dir, 'root.pem'), ca.ca.trustBundle().pem);
  await writeFile(join(dir, 'web.token'), ca.token('default', 'web') + '\n');
  await writeFile(join(dir, 'api.token'), ca.token('default', 'api'));
  app = await startServer((req, res) => res.end(`app saw ${req.url}`));
});

after(async () => {
  for (const s of stops) s.abort();
  await Promise.all(runs);
  await app.close();
  await ca.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('sidecar CA flags', () => {
  void it('gets certificates from the CA and carries a request over mTLS', async () => {
    const caFlags = (sa: string): string[] => ['--ca-address', ca.server.address, '--ca-root-cert', join(dir, 'root.pem'), '--ca-token-file', join(dir, `${sa}.token`), '--cert-ttl', '1h'];
    const b = await run(['--service', 'b', '--app-port', String(app.port), ...local, ...caFlags('api')]);
    await writeFile(join(dir, 'endpoints.json'), JSON.stringify({ services: { b: [{ address: `127.0.0.1:${b.inboundPort}`, pod: 'b-1', identity: 'spiffe://cluster.local/ns/default/sa/api' }] } }));
    const a = await run(['--service', 'a', '--app-port', '9', ...local, ...caFlags('web'), '--endpoints-file', join(dir, 'endpoints.json')]);

    const r = await httpRequest(a.outboundPort, { path: '/over-mtls', headers: { host: 'b' } });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, 'app saw /over-mtls');
    const plain = await httpRequest(b.inboundPort, { path: '/plain' });
    assert.equal(plain.status, 403, 'STRICT by default');

    const idA = JSON.parse((await httpRequest(a.adminPort, { path: '/debug/identity' })).body) as Record<string, unknown>;
    assert.equal(idA['mtls'], true);
    assert.equal(idA['spiffeId'], 'spiffe://cluster.local/ns/default/sa/web');
    assert.equal(idA['trustDomain'], 'cluster.local');
    assert.equal(idA['inboundMtlsMode'], 'STRICT');
    assert.equal((idA['trustBundle'] as unknown[]).length, 1);
    const conns = idA['outboundConnections'] as Array<{ peerIdentity: string; secure: boolean }>;
    assert.equal(conns[0]?.peerIdentity, 'spiffe://cluster.local/ns/default/sa/api');
    const lifetime = Date.parse(idA['notAfter'] as string) - Date.now();
    assert.ok(lifetime > 55 * 60_000 && lifetime <= 3_600_000, `--cert-ttl 1h gave ${lifetime} ms`);
    const metrics = (await httpRequest(b.adminPort, { path: '/metrics' })).body;
    assert.match(metrics, /tracemesh_workload_certificates_total 1/);
    assert.match(metrics, /tracemesh_workload_certificate_expiry_timestamp_seconds \d+/);
  });

  const usage: Array<[string[], RegExp]> = [
    [['--ca-address', '127.0.0.1:15012', '--ca-token', 'x'], /--ca-root-cert/],
    [['--ca-address', '127.0.0.1:15012', '--ca-plaintext'], /--ca-token-file/],
    [['--ca-address', 'nowhere', '--ca-plaintext', '--ca-token', 'x'], /--ca-address/],
    [['--tls-cert-file', '/x.crt'], /--tls-key-file and --trust-bundle-file/],
    [['--mtls-mode', 'sometimes'], /--mtls-mode/],
    [['--trust-domain', 'Bad Domain'], /--trust-domain/],
    [['--workload-labels', 'app'], /--workload-labels/],
    [['--policy-files', '/nonexistent/policies'], /--policy-files/],
  ];
  for (const [flags, message] of usage) {
    void it(`exits 2 on ${flags.join(' ')}`, async () => {
      const err: string[] = [];
      const code = await runSidecar(['--service', 'x', '--app-port', '8080', ...local, ...flags], { env: {}, logger: silentLogger, err: (t) => void err.push(t) });
      assert.equal(code, 2);
      assert.match(err.join(''), message);
    });
  }

  void it('fails to start, naming the CA flags, when no certificate arrives in time', async () => {
    await assert.rejects(
      startSidecar(
        {
          service: 'lonely',
          appPort: 9,
          outboundPort: 0,
          inboundPort: 0,
          adminPort: 0,
          bindAddress: '127.0.0.1',
          collectorEndpoint: '',
          accessLog: 'off',
          caAddress: `127.0.0.1:${await closedPort()}`,
          caPlaintext: true,
          caToken: 'whatever-token',
          identityTimeoutMs: 800,
        },
        { logger: silentLogger },
      ),
      (err: unknown) => (err as { code?: string }).code === 'IDENTITY_UNAVAILABLE' && /--ca-address/.test((err as Error).message),
    );
  });
});
