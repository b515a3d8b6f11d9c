// Tag keys named after Object.prototype's members (`constructor`, `toString`, `__proto__` …)
// behave like any other string in the query API's parsers (Jaeger `tags` JSON, `tag=k:v`,
// v3 `query.attributes`), in the SQL they become, and through a whole search: they filter,
// they never 500, and no native function's text reaches a statement.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hostileKey } from '../common/testing/prototype-keys.ts';
import { InMemoryTraceStore } from '../storage/memory.ts';
import { tagCondition } from '../storage/reader.ts';
import { makeSpan } from '../storage/testing/fixtures.ts';
import { createApp } from './app.ts';
import { parseTagPairs, parseTagsJson } from './params.ts';

const value = fc.stringMatching(/^[\x20-\x7e]{0,20}$/);

void describe('prototype-named keys', () => {
  void it('parseTagsJson and parseTagPairs keep them as own keys with their values', () => {
    fc.assert(
      fc.property(hostileKey(), value, (key, v) => {
        const json = parseTagsJson(JSON.stringify({ [key]: v }));
        assert.notEqual(typeof json, 'string');
        assert.deepEqual(Object.entries(json as Record<string, string>), [[key, v]]);
        if (!key.includes(':')) {
          const pairs = parseTagPairs([`${key}:${v}`]);
          assert.deepEqual(Object.entries(pairs as Record<string, string>), [[key, v]]);
        }
      }),
    );
  });

  void it('tagCondition quotes the key as a string and never consults Object.prototype', () => {
    fc.assert(
      fc.property(hostileKey(), value, (key, v) => {
        const text = tagCondition(key, v).text;
        assert.doesNotMatch(text, /native code|function /);
        assert.ok(text.startsWith('(arrayExists((k, v) -> k = '), text);
      }),
    );
  });

  void it('filter a search like any other key, on the Jaeger v1 and v3 routes', async () => {
    await fc.assert(
      fc.asyncProperty(hostileKey(/^[a-zA-Z_.]{1,20}$/), fc.stringMatching(/^[a-z0-9]{1,8}$/), async (key, v) => {
        const store = new InMemoryTraceStore();
        const base = 1_700_000_000_000_000_000n;
        await store.writeSpans([
          makeSpan(base, { traceId: 'a'.repeat(32), spanId: '1'.repeat(16), service: 'shop', name: 'tagged', kind: 'SERVER', startMs: 0, durationMs: 1, attributes: [{ key, type: 'string', value: v }] }),
          makeSpan(base, { traceId: 'b'.repeat(32), spanId: '2'.repeat(16), service: 'shop', name: 'plain', kind: 'SERVER', startMs: 1, durationMs: 1 }),
        ]);
        const app = createApp({ reader: store, now: () => base + 60_000_000_000n });
        const search = await app.request(`/api/traces?service=shop&lookback=2h&tags=${encodeURIComponent(JSON.stringify({ [key]: v }))}`);
        assert.equal(search.status, 200, await search.clone().text());
        const found = (await search.json()) as { data: { traceID: string; spans: { tags: { key: string; value: unknown }[] }[] }[] };
        assert.deepEqual(found.data.map((t) => t.traceID), ['a'.repeat(32)]);
        assert.ok(found.data[0]!.spans[0]!.tags.some((t) => t.key === key && t.value === v), 'the attribute is shown under its own name');

        const pair = await app.request(`/api/traces?service=shop&lookback=2h&tag=${encodeURIComponent(`${key}:${v}`)}`);
        assert.deepEqual(((await pair.json()) as { data: { traceID: string }[] }).data.map((t) => t.traceID), ['a'.repeat(32)]);

        const start = new Date(Number((base - 3_600_000_000_000n) / 1_000_000n)).toISOString();
        const end = new Date(Number((base + 3_600_000_000_000n) / 1_000_000n)).toISOString();
        const v3 = await app.request(`/api/v3/traces?query.serviceName=shop&query.startTimeMin=${start}&query.startTimeMax=${end}&query.attributes=${encodeURIComponent(JSON.stringify({ [key]: v }))}`);
        assert.equal(v3.status, 200, await v3.clone().text());
        const spans = ((await v3.json()) as { result: { resourceSpans: { scopeSpans: { spans: { name: string }[] }[] }[] } }).result.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans.map((x) => x.name)));
        assert.deepEqual(spans, ['tagged']);
      }),
      { numRuns: 60 },
    );
  });
});
