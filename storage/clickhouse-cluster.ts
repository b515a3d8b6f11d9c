// A local ClickHouse cluster for tests and benchmarks: a private ZooKeeper and one
// clickhouse-server process per shard, each with a `remote_servers` entry naming all shards,
// `{shard}`/`{replica}` macros and the ZooKeeper for replicated tables and ON CLUSTER DDL.
// The storage layer's cluster mode (`migrate(client, { cluster })`) runs against it.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import { freePort, provideClickHouse, type ClickHouseHandle } from './clickhouse-server.ts';
import { provideZooKeeper, type ZooKeeperHandle } from './zookeeper-server.ts';

export interface ClickHouseClusterHandle {
  /** Name in `remote_servers`; pass it as `migrate(client, { cluster })`. */
  readonly cluster: string;
  /** HTTP URL of each node, shard 1 first (its replicas in order). Any node serves the Distributed tables. */
  readonly urls: readonly string[];
  /** Every node, as `urls`; a node can be stopped and started again on its ports and data. */
  readonly nodes: readonly ClusterNode[];
  /** Stops every node and the ZooKeeper. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ClusterNode {
  /** 1-based. */
  readonly shard: number;
  /** 1-based. */
  readonly replica: number;
  readonly url: string;
  /** Stops the server (SIGTERM); its data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data (after stop()). */
  start(): Promise<void>;
}

export interface ClusterOptions {
  /** Shards; default 2. */
  readonly shards?: number;
  /** Replicas of each shard (ReplicatedMergeTree through the ZooKeeper), by shard; default 1 each. */
  readonly replicas?: readonly number[];
  /** Cluster name; default `tracemesh`. */
  readonly cluster?: string;
  readonly logger?: Logger;
}

function clusterXml(cluster: string, tcpPorts: readonly (readonly number[])[], shard: number, replica: number, zk: ZooKeeperHandle, interserverPort: number): string {
  // internal_replication: a Distributed insert writes one replica, ReplicatedMergeTree copies it.
  const shards = tcpPorts
    .map((replicas) => `<shard><internal_replication>true</internal_replication>${replicas.map((p) => `<replica><host>127.0.0.1</host><port>${p}</port></replica>`).join('')}</shard>`)
    .join('');
  return `<remote_servers><${cluster}>${shards}</${cluster}></remote_servers>
  <zookeeper><node><host>${zk.host}</host><port>${zk.port}</port></node><session_timeout_ms>30000</session_timeout_ms></zookeeper>
  <macros><shard>${String(shard).padStart(2, '0')}</shard><replica>r${replica}</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>${interserverPort}</interserver_http_port>`;
}

/** Starts ZooKeeper and the ClickHouse servers (`shards` × their `replicas`) that form one cluster. */
export async function provideClickHouseCluster(options: ClusterOptions = {}): Promise<ClickHouseClusterHandle> {
  const logger = options.logger ?? silentLogger;
  const cluster = options.cluster ?? 'tracemesh';
  const n = options.shards ?? 2;
  const zk = await provideZooKeeper({ logger });
  const handles = new Map<ClusterNode, ClickHouseHandle | undefined>();
  const dirs: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all([...handles.values()].map((h) => (h === undefined ? Promise.resolve() : h.stop())));
    await zk.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  const nodes: ClusterNode[] = [];
  try {
    const specs: { shard: number; replica: number; http: number; tcp: number; interserver: number; dir: string }[] = [];
    for (let shard = 1; shard <= n; shard++) {
      for (let replica = 1; replica <= (options.replicas?.[shard - 1] ?? 1); replica++) {
        const dir = mkdtempSync(join(tmpdir(), `tracemesh-ch-s${shard}r${replica}-`));
        dirs.push(dir);
        specs.push({ shard, replica, http: await freePort(), tcp: await freePort(), interserver: await freePort(), dir });
      }
    }
    const tcp = Array.from({ length: n }, (_, i) => specs.filter((p) => p.shard === i + 1).map((p) => p.tcp));
    for (const p of specs) {
      const run = (): Promise<ClickHouseHandle> =>
        provideClickHouse({ embedded: true, logger, dataDir: p.dir, ports: { http: p.http, tcp: p.tcp }, extraConfigXml: clusterXml(cluster, tcp, p.shard, p.replica, zk, p.interserver) });
      const node: ClusterNode = {
        shard: p.shard,
        replica: p.replica,
        url: `http://127.0.0.1:${p.http}`,
        stop: async () => {
          const h = handles.get(node);
          handles.set(node, undefined);
          await h?.stop();
        },
        start: async () => {
          if (handles.get(node) === undefined) handles.set(node, await run());
        },
      };
      nodes.push(node);
      handles.set(node, undefined);
    }
    await Promise.all(nodes.map((node) => node.start()));
  } catch (err) {
    await stop();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return { cluster, urls: nodes.map((node) => node.url), nodes, stop: () => (stopped ??= stop()) };
}
