// A local ClickHouse cluster for tests and benchmarks: a private ZooKeeper and one
// clickhouse-server process per shard, each with a `remote_servers` entry naming all shards,
// `{shard}`/`{replica}` macros and the ZooKeeper for replicated tables and ON CLUSTER DDL.
// The storage layer's cluster mode (`migrate(client, { cluster })`) runs against it.

import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import { freePort, provideClickHouse, type ClickHouseHandle } from './clickhouse-server.ts';
import { provideZooKeeper, type ZooKeeperHandle } from './zookeeper-server.ts';

export interface ClickHouseClusterHandle {
  /** Name in `remote_servers`; pass it as `migrate(client, { cluster })`. */
  readonly cluster: string;
  /** HTTP URL of each node, shard 1 first. Any node serves the Distributed tables. */
  readonly urls: readonly string[];
  /** Stops every node and the ZooKeeper. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Shards, one server each; default 2. */
  readonly shards?: number;
  /** Cluster name; default `tracemesh`. */
  readonly cluster?: string;
  readonly logger?: Logger;
}

function clusterXml(cluster: string, tcpPorts: readonly number[], shard: number, zk: ZooKeeperHandle, interserverPort: number): string {
  const shards = tcpPorts
    .map((p) => `<shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>${p}</port></replica></shard>`)
    .join('');
  return `<remote_servers><${cluster}>${shards}</${cluster}></remote_servers>
  <zookeeper><node><host>${zk.host}</host><port>${zk.port}</port></node><session_timeout_ms>30000</session_timeout_ms></zookeeper>
  <macros><shard>${String(shard).padStart(2, '0')}</shard><replica>r1</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>${interserverPort}</interserver_http_port>`;
}

/** Starts ZooKeeper and `shards` ClickHouse servers that form one cluster. */
export async function provideClickHouseCluster(options: ClusterOptions = {}): Promise<ClickHouseClusterHandle> {
  const logger = options.logger ?? silentLogger;
  const cluster = options.cluster ?? 'tracemesh';
  const n = options.shards ?? 2;
  const zk = await provideZooKeeper({ logger });
  const nodes: ClickHouseHandle[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((h) => h.stop()));
    await zk.stop();
  };
  try {
    const ports = [];
    for (let i = 0; i < n; i++) ports.push({ http: await freePort(), tcp: await freePort(), interserver: await freePort() });
    const tcp = ports.map((p) => p.tcp);
    const started = await Promise.all(
      ports.map((p, i) =>
        provideClickHouse({ embedded: true, logger, ports: { http: p.http, tcp: p.tcp }, extraConfigXml: clusterXml(cluster, tcp, i + 1, zk, p.interserver) }),
      ),
    );
    nodes.push(...started);
  } catch (err) {
    await stop();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return { cluster, urls: nodes.map((h) => h.url), stop: () => (stopped ??= stop()) };
}
