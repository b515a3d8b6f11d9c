// node --test global setup: one ClickHouse for the whole run (an external one from
// TRACEMESH_CLICKHOUSE_URL, or an embedded server). Test files get their own database each
// (test/support/clickhouse.ts), so they can run in parallel without seeing each other's rows.

import { provideClickHouse, type ClickHouseHandle } from '../../storage/clickhouse-server.ts';
import { provideClickHouseCluster, type ClickHouseClusterHandle } from '../../storage/clickhouse-cluster.ts';
import { createLogger } from '../../common/logger.ts';

let handle: ClickHouseHandle | undefined;
let cluster: ClickHouseClusterHandle | undefined;

export async function globalSetup(): Promise<void> {
  const logger = createLogger({ component: 'test-setup' }, 'warn');
  // The 2-shard cluster (ZooKeeper + two servers) starts beside the single server; the
  // storage conformance suite runs against both. An external cluster can be named with
  // TRACEMESH_TEST_CLICKHOUSE_CLUSTER_URL and TRACEMESH_TEST_CLICKHOUSE_CLUSTER.
  const externalCluster = process.env['TRACEMESH_TEST_CLICKHOUSE_CLUSTER_URL'];
  const [single, nodes] = await Promise.all([
    provideClickHouse({ logger }),
    externalCluster === undefined ? provideClickHouseCluster({ logger }) : Promise.resolve(undefined),
  ]);
  handle = single;
  cluster = nodes;
  process.env['TRACEMESH_CLICKHOUSE_URL'] = handle.url;
  process.env['TRACEMESH_TEST_CLICKHOUSE_EMBEDDED'] = handle.embedded ? '1' : '0';
  if (cluster !== undefined) {
    process.env['TRACEMESH_TEST_CLICKHOUSE_CLUSTER_URL'] = cluster.urls.join(',');
    process.env['TRACEMESH_TEST_CLICKHOUSE_CLUSTER'] = cluster.cluster;
  }
}

export async function globalTeardown(): Promise<void> {
  await Promise.all([handle?.stop(), cluster?.stop()]);
}
