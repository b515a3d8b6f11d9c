// A private ZooKeeper for replicated ClickHouse tables and ON CLUSTER DDL in tests and
// benchmarks: Debian's `zookeeper` package (found or installed through common/provision.ts),
// run standalone on a free loopback port with its data in a temp directory.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import { findOnPath, isExecutable, provideProgram } from '../common/provision.ts';
import { ClickHouseUnavailableError, freePort } from './clickhouse-server.ts';

export interface ZooKeeperHandle {
  readonly host: string;
  readonly port: number;
  /** Kills the server and removes its data. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ZooKeeperOptions {
  readonly startTimeoutMs?: number;
  readonly logger?: Logger;
}

// Debian's package puts the server's jar here; zkServer.sh is only used to find the package.
const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';

/**
 * Opens a real client session (ZooKeeper's ConnectRequest) and closes it again; true when the
 * server granted a session. `ruok` is not enough: ZooKeeper 3.8 answers `imok` while it is
 * still loading its database and closes every session request meanwhile ("ZooKeeperServer not
 * running"). ClickHouse 18.16 gives up on ZooKeeper after three such tries and then crashes on
 * the first ON CLUSTER statement, so readiness here means "a session can be opened".
 */
function sessionGranted(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = Buffer.alloc(0);
    let settled = false;
    const done = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      if (ok) {
        // closeSession: request header (xid 1, type -11), no body.
        const close = Buffer.alloc(12);
        close.writeInt32BE(8, 0);
        close.writeInt32BE(1, 4);
        close.writeInt32BE(-11, 8);
        s.end(close);
        setTimeout(() => s.destroy(), 200).unref();
      } else {
        s.destroy();
      }
      res(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.on('connect', () => {
      // ConnectRequest: protocolVersion 0, lastZxidSeen 0, timeOut 6000 ms, sessionId 0, a 16-byte empty password.
      const body = Buffer.alloc(4 + 8 + 4 + 8 + 4 + 16);
      body.writeInt32BE(0, 0);
      body.writeBigInt64BE(0n, 4);
      body.writeInt32BE(6000, 12);
      body.writeBigInt64BE(0n, 16);
      body.writeInt32BE(16, 24);
      const frame = Buffer.alloc(4);
      frame.writeInt32BE(body.length, 0);
      s.write(Buffer.concat([frame, body]));
    });
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      // ConnectResponse: length, protocolVersion, timeOut, sessionId (non-zero when granted).
      if (got.length >= 20) done(got.readBigInt64BE(12) !== 0n);
    });
    s.on('end', () => done(false));
    s.on('close', () => done(false));
    s.on('error', () => done(false));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res() : child.once('exit', () => res())));
}

/** Starts a standalone ZooKeeper; throws ClickHouseUnavailableError when it cannot. */
export async function provideZooKeeper(options: ZooKeeperOptions = {}): Promise<ZooKeeperHandle> {
  const logger = options.logger ?? silentLogger;
  provideProgram({ names: ['zkServer.sh'], candidates: ['/usr/share/zookeeper/bin/zkServer.sh'], debianPackage: 'zookeeper' }, { logger });
  const java = findOnPath('java') ?? ['/usr/bin/java'].find(isExecutable);
  if (java === undefined) throw new ClickHouseUnavailableError('ZooKeeper needs a Java runtime (on Debian: `sudo apt-get install default-jre-headless`).');
  const dir = mkdtempSync(join(tmpdir(), 'tracemesh-zk-'));
  mkdirSync(join(dir, 'data'));
  const port = await freePort();
  const cfg = join(dir, 'zoo.cfg');
  writeFileSync(
    cfg,
    [`dataDir=${join(dir, 'data')}`, `clientPort=${port}`, 'clientPortAddress=127.0.0.1', 'tickTime=2000', 'maxClientCnxns=200', 'admin.enableServer=false', ''].join('\n'),
  );
  // A small heap and the client JIT: ZooKeeper holds a few thousand znodes here.
  const child = spawn(java, ['-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', `/etc/zookeeper/conf:${ZOOKEEPER_JAR}`, 'org.apache.zookeeper.server.ZooKeeperServerMain', cfg], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      child.kill('SIGKILL');
      await exited(child);
      rmSync(dir, { recursive: true, force: true });
    })());
  const deadline = Date.now() + (options.startTimeoutMs ?? 90_000);
  while (Date.now() < deadline && child.exitCode === null) {
    if (await sessionGranted(port)) {
      logger.info('embedded zookeeper ready', { port });
      return { host: '127.0.0.1', port, stop };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new ClickHouseUnavailableError(`zookeeper did not become ready on 127.0.0.1:${port}. Output:\n${stderr.slice(-2000)}`);
}
