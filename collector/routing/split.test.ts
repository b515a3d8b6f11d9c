import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { protoTypes } from '../otlp/proto.ts';
import { rendezvousOwner, splitTraceRequest } from './split.ts';

interface SpanObj {
  traceId: Uint8Array;
  spanId: Uint8Array;
  name: string;
}

/** A request of `resources` × `scopes` × `spans`, with random trace ids (some shared). */
function request(resources: number, scopes: number, spans: number): { body: Uint8Array; all: SpanObj[] } {
  const traces = Array.from({ length: 7 }, () => randomBytes(16));
  const all: SpanObj[] = [];
  const resourceSpans = [];
  for (let r = 0; r < resources; r++) {
    const scopeSpans = [];
    for (let s = 0; s < scopes; s++) {
      const list: SpanObj[] = [];
      for (let i = 0; i < spans; i++) {
        const span = { traceId: traces[(r * 31 + s * 7 + i) % traces.length]!, spanId: randomBytes(8), name: `r${r}s${s}i${i}`, startTimeUnixNano: 1, endTimeUnixNano: 2 };
        list.push(span);
        all.push(span);
      }
      scopeSpans.push({ scope: { name: `scope-${s}`, version: '1' }, spans: list, schemaUrl: `https://s/${s}` });
    }
    resourceSpans.push({ resource: { attributes: [{ key: 'service.name', value: { stringValue: `svc-${r}` } }] }, scopeSpans, schemaUrl: `https://r/${r}` });
  }
  const msg = protoTypes.traceRequest.fromObject({ resourceSpans });
  return { body: protoTypes.traceRequest.encode(msg).finish(), all };
}

interface Decoded {
  resourceSpans: { resource: { attributes: { value: { stringValue: string } }[] }; schemaUrl: string; scopeSpans: { scope: { name: string }; schemaUrl: string; spans: SpanObj[] }[] }[];
}

void describe('splitTraceRequest', () => {
  void it('gives every span to its trace owner once, inside its own resource and scope', () => {
    const peers = ['a:1', 'b:1', 'c:1'];
    const owner = rendezvousOwner(peers);
    for (let round = 0; round < 20; round++) {
      const { body, all } = request(1 + (round % 3), 1 + (round % 2), 1 + round);
      const split = splitTraceRequest(body, peers.length, owner, 0);
      const seen = new Map<string, string>();
      const parts = split.kind === 'single' ? peers.map((_, i) => (i === split.owner ? body : undefined)) : split.parts;
      parts.forEach((part, o) => {
        if (part === undefined) return;
        const d = protoTypes.traceRequest.toObject(protoTypes.traceRequest.decode(part), { defaults: true }) as unknown as Decoded;
        for (const rs of d.resourceSpans) {
          const svc = rs.resource.attributes[0]!.value.stringValue;
          assert.equal(rs.schemaUrl, `https://r/${svc.slice(4)}`);
          for (const ss of rs.scopeSpans) {
            assert.ok(ss.spans.length > 0, 'no empty scopes');
            assert.equal(ss.schemaUrl, `https://s/${ss.scope.name.slice(6)}`);
            for (const sp of ss.spans) {
              assert.equal(owner(sp.traceId, 0), o, 'owned by the part it is in');
              assert.ok(sp.name.startsWith(`r${svc.slice(4)}s${ss.scope.name.slice(6)}`), 'kept in its resource and scope');
              assert.equal(seen.has(sp.name), false);
              seen.set(sp.name, Buffer.from(sp.spanId).toString('hex'));
            }
          }
        }
      });
      assert.equal(seen.size, all.length);
      for (const s of all) assert.equal(seen.get(s.name), Buffer.from(s.spanId).toString('hex'));
    }
  });

  void it('does not copy a request whose spans share one owner, and rejects malformed bytes', () => {
    const owner = rendezvousOwner(['a:1', 'b:1']);
    const id = randomBytes(16);
    const msg = protoTypes.traceRequest.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: id, spanId: randomBytes(8), name: 'x' }, { traceId: id, spanId: randomBytes(8), name: 'y' }] }] }] });
    const s = splitTraceRequest(protoTypes.traceRequest.encode(msg).finish(), 2, owner, 0);
    assert.deepEqual(s, { kind: 'single', owner: owner(id, 0), spans: 2 });
    assert.throws(() => splitTraceRequest(Uint8Array.from([0x0a, 0x05, 0x12]), 2, owner, 0));
  });
});
