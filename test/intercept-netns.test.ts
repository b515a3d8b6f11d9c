// Transparent interception in a network namespace this test creates: an app that knows
// nothing of the mesh calls http://payments/ (a cluster-IP-like address), iptables sends the
// connection to the sidecar's outbound port, and the sidecar routes it by Host to the
// Service's endpoint. The sidecar removes its rules when it stops.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { interceptRules } from '../sidecar/intercept/iptables.ts';

const NS = `tm13b-${process.pid}`;
const ROOT = new URL('..', import.meta.url).pathname;
const children: ChildProcess[] = [];
let dir = '';

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr}`);
}

function inNs(args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

/** Resolves with the first line of `stream` that `pattern` matches; rejects at the deadline. */
function lineMatching(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp, ms = 20_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${ms} ms; saw:\n${seen.slice(-2000)}`)), ms);
    const s = child[stream];
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      seen += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const m = pattern.exec(line);
        if (m !== null) {
          clearTimeout(timer);
          s?.off('data', onData);
          resolve(m);
          return;
        }
      }
    };
    s?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}) before a line matching ${pattern}; saw:\n${seen.slice(-2000)}`));
    });
  });
}

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

/** curl inside the namespace, as `user` (a setpriv prefix; empty: root), with payments → 10.96.0.10. */
function curlAs(user: readonly string[], url: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('ip', ['netns', 'exec', NS, ...user, 'curl', '-sS', '--max-time', '10', '--resolve', 'payments:80:10.96.0.10', url], { encoding: 'utf8' });
}

function rulesInNs(): { ok: boolean; out: string } {
  const r = spawnSync('ip', ['netns', 'exec', NS, 'iptables', '-w', '-t', 'nat', '-S', 'TRACEMESH_OUTPUT'], { encoding: 'utf8' });
  return { ok: r.status === 0, out: r.stdout };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-intercept-'));
  ip('netns', 'add', NS);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  // A "cluster IP" the app can route to (REDIRECT happens after the route lookup). Nothing
  // listens on it, so without interception a connection is refused.
  ip('-n', NS, 'addr', 'add', '10.96.0.10/32', 'dev', 'lo');
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  spawnSync('ip', ['netns', 'del', NS]);
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

void test('the rules: the sidecar uid and loopback are left alone, TCP destinations before HTTP ports', () => {
  const rules = interceptRules({ outboundPort: 15001, proxyUid: 1337, httpPorts: [80, 8080], tcp: [{ address: '10.96.0.20', port: 5432, toPort: 15432 }], exclude: ['10.0.0.0/8'] });
  assert.equal(
    rules,
    [
      '*nat',
      ':TRACEMESH_OUTPUT - [0:0]',
      '-A OUTPUT -p tcp -j TRACEMESH_OUTPUT',
      '-A TRACEMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A TRACEMESH_OUTPUT -d 127.0.0.0/8 -j RETURN',
      '-A TRACEMESH_OUTPUT -d 10.0.0.0/8 -j RETURN',
      '-A TRACEMESH_OUTPUT -p tcp -d 10.96.0.20 --dport 5432 -j REDIRECT --to-ports 15432',
      '-A TRACEMESH_OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 15001',
      '-A TRACEMESH_OUTPUT -p tcp --dport 8080 -j REDIRECT --to-ports 15001',
      'COMMIT',
      '',
    ].join('\n'),
  );
  assert.throws(() => interceptRules({ outboundPort: 15001, proxyUid: 0, httpPorts: [0], tcp: [], exclude: [] }), /--intercept-ports must be a port/);
  assert.throws(() => interceptRules({ outboundPort: 15001, proxyUid: 0, httpPorts: [80], tcp: [], exclude: ['fe80::/10'] }), /must be an IPv4 address or CIDR/);
});

void test('sidecar --intercept: an unaware app reaches the Service through the sidecar; the rules go when it stops', async () => {
  const node = process.execPath;
  const app = inNs([
    node,
    '-e',
    `require('node:http').createServer((req, res) => res.end(JSON.stringify({ path: req.url, headers: req.headers }))).listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port); });`,
  ]);
  const appPort = Number((await lineMatching(app, 'stdout', /^port (\d+)$/))[1]);
  const endpoints = join(dir, 'endpoints.json');
  await writeFile(endpoints, JSON.stringify({ services: { payments: [{ address: `127.0.0.1:${appPort}`, pod: 'payments-1' }] } }));

  const sidecar = inNs([
    node,
    join(ROOT, 'cli/tracemesh.ts'),
    'sidecar',
    '--service=client',
    '--pod=client-1',
    '--app-port=9',
    '--outbound-port=0',
    '--inbound-port=0',
    '--admin-port=0',
    '--collector-endpoint=none',
    `--endpoints-file=${endpoints}`,
    '--intercept',
    '--intercept-ports=80',
  ]);
  const installed = await lineMatching(sidecar, 'stderr', /transparent interception installed.*"outboundPort":(\d+)/);
  const outboundPort = Number(installed[1]);
  const rules = rulesInNs();
  assert.ok(rules.ok, 'the chain exists');
  assert.match(rules.out, new RegExp(`--dport 80 -j REDIRECT --to-ports ${outboundPort}`));
  assert.match(rules.out, /--uid-owner 0 -j RETURN/);

  // The app runs as nobody: another uid than the sidecar (root here), as interception requires.
  const accessLine = lineMatching(sidecar, 'stdout', /"direction":"outbound"/);
  const curl = curlAs(NOBODY, 'http://payments/hello?x=1');
  assert.equal(curl.status, 0, curl.stderr);
  const seen = JSON.parse(curl.stdout) as { path: string; headers: Record<string, string> };
  assert.equal(seen.path, '/hello?x=1');
  // Only the sidecar adds these: the request went through it.
  assert.equal(seen.headers['x-tracemesh-source-workload'], 'client');
  assert.match(seen.headers['traceparent'] ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
  const log = JSON.parse((await accessLine).input) as Record<string, unknown>;
  assert.equal(log['service'], 'payments');
  assert.equal(log['upstream'], `127.0.0.1:${appPort}`);
  assert.equal(log['path'], '/hello'); // url.path: without the query

  // The sidecar's own uid (root here) is never redirected: nothing listens on the cluster IP.
  const asRoot = curlAs([], 'http://payments/');
  assert.notEqual(asRoot.status, 0);
  assert.match(asRoot.stderr, /Connection refused|Couldn't connect/);

  sidecar.kill('SIGTERM');
  await new Promise((resolve) => (sidecar.exitCode !== null ? resolve(undefined) : sidecar.once('exit', resolve)));
  assert.equal(sidecar.exitCode, 0);
  assert.equal(rulesInNs().ok, false, 'the chain is gone after shutdown');
  assert.notEqual(curlAs(NOBODY, 'http://payments/').status, 0, 'the app is no longer redirected');
});
