// The in-memory store that the query API's unit tests run against must behave like the real
// backend: it passes the same conformance suite as ClickHouse storage.

import { conformanceSuite } from '../storage/testing/conformance.ts';
import { MemoryTraceStore } from './memory-store.ts';

conformanceSuite('MemoryTraceStore conformance', () => {
  const store = new MemoryTraceStore();
  return Promise.resolve({ reader: store, writer: store, close: () => Promise.resolve() });
});
