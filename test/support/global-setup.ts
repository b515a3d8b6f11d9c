// node --test global setup: one ClickHouse for the whole run (an external one from
// TRACEMESH_CLICKHOUSE_URL, or an embedded server). Test files get their own database each
// (test/support/clickhouse.ts), so they can run in parallel without seeing each other's rows.

import { provideClickHouse, type ClickHouseHandle } from '../../storage/clickhouse-server.ts';
import { createLogger } from '../../common/logger.ts';

let handle: ClickHouseHandle | undefined;

export async function globalSetup(): Promise<void> {
  handle = await provideClickHouse({ logger: createLogger({ component: 'test-setup' }, 'warn') });
  process.env['TRACEMESH_CLICKHOUSE_URL'] = handle.url;
  process.env['TRACEMESH_TEST_CLICKHOUSE_EMBEDDED'] = handle.embedded ? '1' : '0';
}

export async function globalTeardown(): Promise<void> {
  await handle?.stop();
}
