import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../common/logger.ts';
import { runSidecar, sidecarFlags } from './main.ts';
import { httpRequest, startServer, waitFor } from './testing/harness.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

function capture(): { out: string[]; err: string[]; options: { out: (t: string) => void; err: (t: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, options: { out: (t) => void out.push(t), err: (t) => void err.push(t) } };
}

const local = ['--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--bind-address', '127.0.0.1', '--collector-endpoint', 'none', '--access-log', 'off'];

void describe('runSidecar', () => {
  void it('prints help listing every flag with its environment twin', async () => {
    const c = capture();
    assert.equal(await runSidecar(['--help'], c.options), 0);
    const help = c.out.join('');
    for (const f of sidecarFlags) {
      assert.ok(help.includes(`--${f.name}`), f.name);
      assert.ok(help.includes(`TRACEMESH_${f.name.replace(/-/g, '_').toUpperCase()}`), f.name);
    }
  });

  const usageErrors: Array<[string[], RegExp]> = [
    [['--app-port', '8080'], /--service \(or TRACEMESH_SERVICE\) is required/],
    [['--service', 'a', '--app-port', 'eighty'], /--app-port must be a whole number/],
    [['--service', 'a', '--app-port', '8080', '--bogus'], /Unknown option '--bogus'.*--help/],
    [['--service', 'a', '--app-port', '8080', '--sampling-ratio', 'half'], /--sampling-ratio/],
    [['--service', 'a', '--app-port', '8080', '--access-log', 'file'], /--access-log/],
    [['--service', 'a', '--app-port', '8080', '--upstream-timeout', 'soon'], /--upstream-timeout/],
    [['--service', 'a', '--app-port', '8080', '--sampling-ratio', '3', ...local], /--sampling-ratio/],
    [['--service', 'a', '--app-port', '8080', '--tcp-listeners', 'db:5432'], /--tcp-listeners \(or TRACEMESH_TCP_LISTENERS\) entries must be <listen-port>=<service>:<port>, e\.g\. 15101=db:5432.*got "db:5432"/],
    [['--service', 'a', '--app-port', '8080', '--tcp-listeners', '15101=db:0'], /--tcp-listeners/],
    [['--service', 'a', '--app-port', '8080', '--opaque-ports', '5432,http'], /--opaque-ports \(or TRACEMESH_OPAQUE_PORTS\) must be ports from 1 to 65535, got "http"/],
  ];
  for (const [argv, message] of usageErrors) {
    void it(`exits 2 on ${argv.join(' ')}`, async () => {
      const c = capture();
      assert.equal(await runSidecar(argv, { ...c.options, env: {}, logger: createLogger({}, 'error', () => {}) }), 2);
      assert.match(c.err.join(''), message);
    });
  }

  void it('runs from flags and environment until aborted, then stops cleanly', async () => {
    const app = await startServer((_req, res) => res.end('hello'));
    const lines: string[] = [];
    const logger = createLogger({}, 'info', (l) => lines.push(l));
    const stop = new AbortController();
    const running = runSidecar(['--app-port', String(app.port), '--tcp-listeners', '0=db:5432', ...local], {
      env: { TRACEMESH_SERVICE: 'from-env', TRACEMESH_POD: 'from-env-1' },
      logger,
      signal: stop.signal,
    });
    try {
      const started = await waitFor(() => lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'sidecar started'), 'start log');
      assert.equal(started['service'], 'from-env');
      assert.equal(started['pod'], 'from-env-1');
      assert.match(String((started['tcpListeners'] as string[] | undefined)?.[0]), /^[1-9]\d*=db:5432$/, 'the raw-TCP listener got a port');
      const r = await httpRequest(started['inboundPort'] as number, { path: '/' });
      assert.equal(r.body, 'hello');
    } finally {
      stop.abort();
      assert.equal(await running, 0);
      await app.close();
    }
    assert.ok(lines.some((l) => l.includes('"sidecar stopped"')));
  });

  void it('shuts down cleanly on SIGTERM when run as a process', async () => {
    const app = await startServer((_req, res) => res.end('hi'));
    const child = spawn(process.execPath, [MAIN, '--service', 'proc', '--app-port', String(app.port), ...local], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const started = await waitFor(
        () =>
          stderr
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .find((l) => l['msg'] === 'sidecar started'),
        'child to start',
        10_000,
      );
      assert.equal((await httpRequest(started['inboundPort'] as number)).body, 'hi');
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.match(stderr, /"sidecar stopped"/);
    } finally {
      child.kill('SIGKILL');
      await app.close();
    }
  });
});
