import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from '../../common/flags.ts';
import { silentLogger } from '../../common/logger.ts';
import { CaClient } from '../../common/ca/client.ts';
import { isCaError } from '../../common/ca/errors.ts';
import { CA_FLAGS, startCaFromFlags } from './flags.ts';
import * as net from 'node:net';
import { CA_ERROR } from '../../common/ca/errors.ts';

void describe('CA flags', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  void it('start a TLS CA with a persisted root and bootstrap tokens', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tracemesh-ca-flags-'));
    dirs.push(dir);
    const tokens = join(dir, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ 'flags-test-token-0123456789': { namespace: 'default', serviceAccount: 'web' } }));
    const flags = parseFlags(CA_FLAGS, ['--ca-dir', join(dir, 'ca'), '--ca-port', '0', '--workload-cert-ttl', '90s'], {
      TRACEMESH_BOOTSTRAP_TOKENS_FILE: tokens,
    });
    const running = await startCaFromFlags(flags, silentLogger);
    const client = new CaClient({
      address: running.server.address,
      transport: { kind: 'tls', rootCertsPem: await readFile(join(dir, 'ca', 'root-cert.pem'), 'utf8'), serverSpiffeId: running.server.serverSpiffeId! },
      token: 'flags-test-token-0123456789',
    });
    const cert = await client.requestCertificate();
    assert.equal(cert.spiffeId, 'spiffe://cluster.local/ns/default/sa/web');
    assert.ok(Math.abs(cert.notAfter.getTime() - (Date.now() + 90_000)) < 2_000);
    client.close();
    await Promise.all([running.close(), running.close()]);
  });

  void it('--ca-sign-burst and --ca-sign-per-minute limit one identity; --ca-tls-handshake-timeout closes a stalled handshake', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tracemesh-ca-flags-'));
    dirs.push(dir);
    const tokens = join(dir, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ 'flags-test-token-0123456789': { namespace: 'default', serviceAccount: 'web' } }));
    const flags = parseFlags(CA_FLAGS, ['--ca-dir', join(dir, 'ca'), '--ca-port', '0', '--bootstrap-tokens-file', tokens, '--ca-sign-burst', '2', '--ca-sign-per-minute', '1', '--ca-tls-handshake-timeout', '500ms'], {});
    const running = await startCaFromFlags(flags, silentLogger);
    const client = new CaClient({
      address: running.server.address,
      transport: { kind: 'tls', rootCertsPem: await readFile(join(dir, 'ca', 'root-cert.pem'), 'utf8'), serverSpiffeId: running.server.serverSpiffeId! },
      token: 'flags-test-token-0123456789',
    });
    try {
      await client.requestCertificate();
      await client.requestCertificate();
      await assert.rejects(client.requestCertificate(), (err: unknown) => isCaError(err) && err.code === CA_ERROR.rateLimited && /more than 2 certificates at once or 1 a minute/.test(err.message));
      // A handshake that starts (one byte of a TLS record) and stalls is closed.
      const t0 = performance.now();
      const sock = net.connect(running.server.port, '127.0.0.1');
      sock.on('error', () => {});
      sock.resume();
      sock.write(Buffer.from([0x16]));
      await new Promise((r) => sock.once('close', r));
      const ms = performance.now() - t0;
      assert.ok(ms < 8_000, `closed after ${Math.round(ms)} ms (timeout 500 ms; node's default is 120 s)`);
    } finally {
      client.close();
      await running.close();
    }
  });

  void it('refuse a CA that could not authenticate a first request', async () => {
    const flags = parseFlags(CA_FLAGS, ['--ca-port', '0'], {});
    await assert.rejects(startCaFromFlags(flags, silentLogger), (err) => isCaError(err, 'CA_CONFIG_INVALID'));
  });
});
