// Attribute keys named after Object.prototype's members behave like any other string on every
// OTLP decode path (protobuf by the hand-written decoder, OTLP/JSON by json.ts + convert.ts,
// resource and span attributes, kvlist values), and a Content-Encoding named like one is a 415,
// not a call of Object's function.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hostileKey } from '../../common/testing/prototype-keys.ts';
import { silentLogger } from '../../common/logger.ts';
import { decodeSpans } from '../../storage/rows.ts';
import { Admission, DEFAULT_ADMISSION_LIMITS } from '../admission/admission.ts';
import type { Ingest } from '../receiver/ingest.ts';
import { createOtlpHttpApp } from '../receiver/http.ts';
import { encodeTraces, span, str, traceRequest } from '../testing/otlp.ts';
import { convertTraces } from './convert.ts';
import { decodeTraceRequestJson } from './json.ts';
import { TraceDecoder } from './decode-traces.ts';
import type { ExportTraceRequestMsg } from './model.ts';

const value = fc.stringMatching(/^[\x20-\x7e]{0,20}$/);

function request(key: string, v: string): ExportTraceRequestMsg {
  const req = traceRequest('svc', [span({ attributes: [str(key, v), { key: 'nested', value: { kvlistValue: { values: [str(key, v)] } } }] })]);
  const rs = req.resourceSpans![0]!;
  return { resourceSpans: [{ ...rs, resource: { attributes: [...(rs.resource?.attributes ?? []), str(key, v)] } }] };
}

/** The OTLP/JSON text of a request with one hostile attribute key, written by hand as an SDK would send it. */
function jsonRequest(key: string, v: string): string {
  const kv = JSON.stringify({ key, value: { stringValue: v } });
  return `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}},${kv}]},"scopeSpans":[{"scope":{"name":"t"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"s","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000","attributes":[${kv},{"key":"nested","value":{"kvlistValue":{"values":[${kv}]}}}]}]}]}]}`;
}

void describe('prototype-named attribute keys in OTLP', () => {
  void it('the protobuf decoder keeps them as keys with their values', () => {
    const decoder = new TraceDecoder({ virtualNodeAttributes: [] });
    fc.assert(
      fc.property(hostileKey(), value, (key, v) => {
        const [s] = decodeSpans(decoder.decode(encodeTraces(request(key, v))).rows);
        assert.ok(s!.attributes.some((a) => a.key === key && a.value === v));
        assert.ok(s!.resourceAttributes.some((a) => a.key === key && a.value === v));
        assert.deepEqual(JSON.parse(s!.attributes.find((a) => a.key === 'nested')!.value), { [key]: v });
      }),
    );
  });

  void it('OTLP/JSON keeps them as keys with their values', () => {
    fc.assert(
      fc.property(hostileKey(), value, (key, v) => {
        const { records } = convertTraces(decodeTraceRequestJson(jsonRequest(key, v)));
        const s = records[0]!;
        assert.ok(s.attributes.some((a) => a.key === key && a.value === v));
        assert.ok(s.resourceAttributes.some((a) => a.key === key && a.value === v));
        const nested = JSON.parse(s.attributes.find((a) => a.key === 'nested')!.value) as Record<string, unknown>;
        assert.deepEqual(Object.entries(nested), [[key, v]]);
      }),
    );
  });

  void it('a Content-Encoding named after a prototype member is refused with 415', async () => {
    const ingest: Ingest = {
      traces: async () => ({ rejected: 0, errorMessage: '' }),
      tracesProtobuf: async () => ({ rejected: 0, errorMessage: '' }),
      logs: async () => ({ rejected: 0, errorMessage: '' }),
      logsProtobuf: async () => ({ rejected: 0, errorMessage: '' }),
      refused: () => {},
    };
    const app = createOtlpHttpApp({ ingest, maxBodyBytes: 1 << 20, admission: new Admission(DEFAULT_ADMISSION_LIMITS, { refused: () => {} }, silentLogger), logger: silentLogger });
    await fc.assert(
      fc.asyncProperty(hostileKey(/^[a-z_]{1,20}$/), async (coding) => {
        fc.pre(!['gzip', 'x-gzip', 'deflate', 'br', 'zstd', 'identity'].includes(coding));
        const res = await app.request('/v1/traces', { method: 'POST', body: new Uint8Array([1, 2, 3]), headers: { 'content-type': 'application/x-protobuf', 'content-encoding': coding } });
        assert.equal(res.status, 415);
      }),
      { numRuns: 40 },
    );
  });
});
