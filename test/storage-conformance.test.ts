// The storage conformance suite against real ClickHouse (the embedded 18.16 server of the
// global setup, or TRACEMESH_CLICKHOUSE_URL), in a fresh database migrated by `migrate()`.

import { createClickHouseClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { InMemoryTraceStore } from '../storage/memory.ts';
import { conformanceSuite } from '../storage/testing/conformance.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase } from './support/clickhouse.ts';

conformanceSuite('ClickHouse storage conformance', async () => {
  const db = await createTestDatabase();
  const client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  return {
    reader: new ClickHouseTraceReader(client),
    writer: new ClickHouseTraceWriter(client),
    close: async () => {
      await client.close();
      await db.drop();
    },
  };
});

// The in-memory store that other components' tests use must behave the same.
conformanceSuite('in-memory storage conformance', async () => {
  const store = new InMemoryTraceStore();
  return { reader: store, writer: store, close: async () => {} };
});
