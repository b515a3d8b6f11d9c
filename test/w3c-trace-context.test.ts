// W3C Trace Context conformance of the sidecar: a port of the official test suite (the `test/`
// harness of github.com/w3c/trace-context, `test/test.py` at commit acab820, "Fix tracestate key
// grammar tests (#584)"), which is Python and needs the network to fetch, so its cases are
// ported here one for one, under the upstream test names, at STRICT_LEVEL 2 and at spec levels
// 1 and 2 (`TraceContext2Test`).
//
// The service under test is a real sidecar with an app that copies the trace headers
// faithfully, as the upstream harness expects of a "test service": the harness's request enters
// the sidecar's inbound port (raw HTTP/1.1, so repeated header lines, casing and whitespace are
// exactly the upstream's), the app receives it and makes the callbacks the harness asked for
// through the same sidecar's outbound port, copying every traceparent/tracestate line it was
// given; the harness checks the callbacks' headers with the upstream's own rules:
//   - `get_traceparent`: exactly one traceparent, in the version-00 shape, ids not all zero;
//   - `get_tracestate`: every tracestate line parsed with the upstream `Tracestate` grammar
//     (key `[0-9a-z][_0-9a-z\-*/@]{0,255}`, the value grammar, OWS around commas), an illegal
//     member failing the test, a duplicated key keeping its first member.
// Mapping: each `it` below is named after the upstream method (`TraceContextTest.*`,
// `AdvancedTest.*`, `TraceContext2Test.*`) and asserts what that method asserts. The last
// describe block is not upstream: Level 2's `traceresponse` header, which the suite does not
// test.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { startServer, startTestSidecar, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

type Header = readonly [string, string];

let harness: TestServer;
let app: TestServer;
let sidecar: TestSidecar;
/** Callback headers the harness received, by callback path. */
const callbacks = new Map<string, string[]>();
let caseNo = 0;

function traceLines(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'traceparent' || name === 'tracestate') out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

before(async () => {
  harness = await startServer((req, res) => {
    req.resume();
    callbacks.set(req.url ?? '', [...req.rawHeaders]);
    res.end('ok');
  });
  // The test service: for `?cb=<path>&count=n`, n callbacks to the harness through the
  // sidecar's outbound port, with every trace header line it was given.
  app = await startServer((req: IncomingMessage, res) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://app');
    const count = Number(url.searchParams.get('count') ?? '1');
    const copied = traceLines(req.rawHeaders);
    let done = 0;
    for (let i = 0; i < count; i++) {
      const out = request(
        { host: '127.0.0.1', port: sidecar.sidecar.outboundPort, method: 'POST', path: `${url.searchParams.get('cb') ?? '/cb'}/${i}`, headers: ['host', 'harness', ...copied], agent: false },
        (r) => {
          r.resume();
          r.on('end', () => {
            if (++done === count) res.end('done');
          });
        },
      );
      out.on('error', () => res.destroy());
      out.end();
    }
  });
  sidecar = await startTestSidecar({ service: 'w3c-service', appPort: app.port }, { harness: [{ address: `127.0.0.1:${harness.port}`, pod: 'harness-1' }] });
});

after(async () => {
  await sidecar?.close();
  await app?.close();
  await harness?.close();
});

/** One raw HTTP/1.1 request to the sidecar's inbound port with exactly these header lines. */
function rawRequest(path: string, headers: readonly Header[]): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(sidecar.sidecar.inboundPort, '127.0.0.1');
    let lines = `POST ${path} HTTP/1.1\r\nhost: w3c-service\r\ncontent-length: 0\r\nconnection: close\r\n`;
    for (const [k, v] of headers) lines += `${k}: ${v}\r\n`;
    sock.write(`${lines}\r\n`, 'latin1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head });
    });
  });
}

/** The upstream `make_request`: the callbacks' header lists (name/value pairs), one per callback. */
async function makeRequest(headers: readonly Header[], count = 1): Promise<Header[][]> {
  const cb = `/cb/${++caseNo}`;
  const r = await rawRequest(`/test?cb=${encodeURIComponent(cb)}&count=${count}`, headers);
  assert.equal(r.status, 200, `the test service answered ${r.status}: ${r.head}`);
  const out: Header[][] = [];
  for (let i = 0; i < count; i++) {
    const raw = callbacks.get(`${cb}/${i}`);
    assert.ok(raw, 'your test service failed to make a callback to the test harness');
    const pairs: Header[] = [];
    for (let j = 0; j < raw.length; j += 2) pairs.push([raw[j]!, raw[j + 1]!]);
    out.push(pairs);
  }
  return out;
}

interface Traceparent {
  readonly version: string;
  readonly traceId: string;
  readonly parentId: string;
  readonly traceFlags: number;
}

/** The upstream `get_traceparent` + `Traceparent.from_string`. */
function getTraceparent(headers: readonly Header[]): Traceparent {
  const found = headers.filter(([k]) => /^traceparent$/i.test(k));
  assert.equal(found.length, 1, `expect one traceparent header, got ${JSON.stringify(found)}`);
  const [version, traceId, parentId, flags] = found[0]![1].split('-');
  assert.match(version ?? '', /^[0-9a-f]{2}$/);
  assert.notEqual(version, 'ff');
  assert.match(traceId ?? '', /^[0-9a-f]{32}$/);
  assert.notEqual(traceId, '0'.repeat(32));
  assert.match(parentId ?? '', /^[0-9a-f]{16}$/);
  assert.notEqual(parentId, '0'.repeat(16));
  assert.match(flags ?? '', /^[0-9a-f]{2}$/);
  return { version: version!, traceId: traceId!, parentId: parentId!, traceFlags: Number.parseInt(flags!, 16) };
}

const TS_KEY = '[0-9a-z][_0-9a-z\\-\\*\\/@]{0,255}';
const TS_VALUE = '[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,255}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]';
const TS_MEMBER = new RegExp(`^(${TS_KEY})=(${TS_VALUE})$`);

/** The upstream `get_tracestate` + `Tracestate.from_string`: ordered, first of a duplicated key kept. */
function getTracestate(headers: readonly Header[]): Map<string, string> {
  const ts = new Map<string, string>();
  for (const [k, v] of headers) {
    if (!/^tracestate$/i.test(k)) continue;
    for (const member of v.split(/[ \t]*,[ \t]*/)) {
      if (!member) continue;
      const m = TS_MEMBER.exec(member);
      assert.ok(m, `illegal key-value format ${JSON.stringify(member)}`);
      if (!ts.has(m[1]!)) ts.set(m[1]!, m[2]!);
    }
  }
  return ts;
}

const str = (ts: Map<string, string>): string => [...ts].map(([k, v]) => `${k}=${v}`).join(',');

async function single(headers: readonly Header[]): Promise<{ tp: Traceparent; ts: Map<string, string> }> {
  const [h] = await makeRequest(headers);
  return { tp: getTraceparent(h!), ts: getTracestate(h!) };
}

const TP = '00-12345678901234567890123456789012-1234567890123456-01';
const TP0 = '00-12345678901234567890123456789012-1234567890123456-00';
const TID = '12345678901234567890123456789012';

/** Upstream cases that only assert "a new trace id" for an invalid traceparent. */
async function restarts(value: string, notId = TID): Promise<void> {
  const { tp } = await single([['traceparent', value]]);
  assert.notEqual(tp.traceId, notId, value);
}

async function keeps(headers: readonly Header[]): Promise<{ tp: Traceparent; ts: Map<string, string> }> {
  const r = await single(headers);
  assert.equal(r.tp.traceId, TID);
  return r;
}

void describe('TraceContextTest (Level 1, strict level 2)', () => {
  void it('test_both_traceparent_and_tracestate_missing', async () => {
    await single([]);
  });

  void it('test_traceparent_included_tracestate_missing', async () => {
    const { tp } = await keeps([['traceparent', TP]]);
    assert.notEqual(tp.parentId, '1234567890123456');
  });

  void it('test_traceparent_duplicated', async () => {
    const { tp } = await single([
      ['traceparent', '00-12345678901234567890123456789011-1234567890123456-01'],
      ['traceparent', '00-12345678901234567890123456789012-1234567890123456-01'],
    ]);
    assert.notEqual(tp.traceId, '12345678901234567890123456789011');
    assert.notEqual(tp.traceId, '12345678901234567890123456789012');
  });

  void it('test_traceparent_header_name', async () => {
    for (const name of ['trace-parent', 'trace.parent']) {
      const { tp } = await single([[name, TP]]);
      assert.notEqual(tp.traceId, TID, name);
    }
  });

  void it('test_traceparent_header_name_valid_casing', async () => {
    for (const name of ['TraceParent', 'TrAcEpArEnT', 'TRACEPARENT']) await keeps([[name, TP]]);
  });

  void it('test_traceparent_version_0x00', async () => {
    await restarts(`${TP}.`);
    await restarts(`${TP}-what-the-future-will-be-like`);
  });

  void it('test_traceparent_version_0xcc', async () => {
    await keeps([['traceparent', 'cc-12345678901234567890123456789012-1234567890123456-01']]);
    await keeps([['traceparent', 'cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like']]);
    await restarts('cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like');
  });

  void it('test_traceparent_version_0xff', async () => {
    await restarts('ff-12345678901234567890123456789012-1234567890123456-01');
  });

  void it('test_traceparent_version_illegal_characters', async () => {
    await restarts('.0-12345678901234567890123456789012-1234567890123456-01');
    await restarts('0.-12345678901234567890123456789012-1234567890123456-01');
  });

  void it('test_traceparent_version_too_long', async () => {
    await restarts('000-12345678901234567890123456789012-1234567890123456-01');
    await restarts('0000-12345678901234567890123456789012-1234567890123456-01');
  });

  void it('test_traceparent_version_too_short', async () => {
    await restarts('0-12345678901234567890123456789012-1234567890123456-01');
  });

  void it('test_traceparent_trace_id_all_zero', async () => {
    await restarts('00-00000000000000000000000000000000-1234567890123456-01', '0'.repeat(32));
  });

  void it('test_traceparent_trace_id_illegal_characters', async () => {
    await restarts('00-.2345678901234567890123456789012-1234567890123456-01', '.2345678901234567890123456789012');
    await restarts('00-1234567890123456789012345678901.-1234567890123456-01', '1234567890123456789012345678901.');
  });

  void it('test_traceparent_trace_id_too_long', async () => {
    const { tp } = await single([['traceparent', '00-123456789012345678901234567890123-1234567890123456-01']]);
    for (const id of ['123456789012345678901234567890123', '12345678901234567890123456789012', '23456789012345678901234567890123']) assert.notEqual(tp.traceId, id);
  });

  void it('test_traceparent_trace_id_too_short', async () => {
    await restarts('00-1234567890123456789012345678901-1234567890123456-01', '1234567890123456789012345678901');
  });

  void it('test_traceparent_parent_id_all_zero', async () => {
    await restarts('00-12345678901234567890123456789012-0000000000000000-01');
  });

  void it('test_traceparent_parent_id_illegal_characters', async () => {
    await restarts('00-12345678901234567890123456789012-.234567890123456-01');
    await restarts('00-12345678901234567890123456789012-123456789012345.-01');
  });

  void it('test_traceparent_parent_id_too_long', async () => {
    await restarts('00-12345678901234567890123456789012-12345678901234567-01');
  });

  void it('test_traceparent_parent_id_too_short', async () => {
    await restarts('00-12345678901234567890123456789012-123456789012345-01');
  });

  void it('test_traceparent_trace_flags_illegal_characters', async () => {
    await restarts('00-12345678901234567890123456789012-1234567890123456-.0');
    await restarts('00-12345678901234567890123456789012-1234567890123456-0.');
  });

  void it('test_traceparent_trace_flags_too_long', async () => {
    await restarts('00-12345678901234567890123456789012-1234567890123456-001');
  });

  void it('test_traceparent_trace_flags_too_short', async () => {
    await restarts('00-12345678901234567890123456789012-1234567890123456-1');
  });

  void it('test_traceparent_ows_handling', async () => {
    for (const v of [` ${TP}`, `\t${TP}`, `${TP} `, `${TP}\t`, `\t ${TP} \t`]) await keeps([['traceparent', v]]);
  });

  void it('test_tracestate_included_traceparent_missing', async () => {
    const a = await single([['tracestate', 'foo=1']]);
    const b = await single([['tracestate', 'foo=1,bar=2']]);
    assert.equal(a.ts.size, b.ts.size);
  });

  void it('test_tracestate_included_traceparent_included', async () => {
    const { ts } = await keeps([
      ['traceparent', TP0],
      ['tracestate', 'foo=1,bar=2'],
    ]);
    assert.equal(ts.get('foo'), '1');
    assert.equal(ts.get('bar'), '2');
  });

  void it('test_tracestate_header_name', async () => {
    for (const name of ['trace-state', 'trace.state']) {
      const { ts } = await single([
        ['traceparent', TP0],
        [name, 'foo=1'],
      ]);
      assert.equal(ts.has('foo'), false, name);
    }
  });

  void it('test_tracestate_header_name_valid_casing', async () => {
    for (const name of ['TraceState', 'TrAcEsTaTe', 'TRACESTATE']) {
      const { ts } = await single([
        ['traceparent', TP0],
        [name, 'foo=1'],
      ]);
      assert.equal(ts.get('foo'), '1', name);
    }
  });

  void it('test_tracestate_empty_header', async () => {
    const a = await keeps([
      ['traceparent', TP0],
      ['tracestate', ''],
    ]);
    assert.ok(a.ts.size === 0 || str(a.ts) !== '');
    for (const lines of [
      ['foo=1', ''],
      ['', 'foo=1'],
    ]) {
      const { ts } = await keeps([['traceparent', TP0], ...lines.map((l): Header => ['tracestate', l])]);
      assert.equal(ts.get('foo'), '1', JSON.stringify(lines));
    }
  });

  void it('test_tracestate_multiple_headers_different_keys', async () => {
    const { ts } = await keeps([
      ['traceparent', TP0],
      ['tracestate', 'foo=1,bar=2'],
      ['tracestate', 'rojo=1,congo=2'],
      ['tracestate', 'baz=3'],
    ]);
    const s = str(ts);
    for (const m of ['foo=1', 'bar=2', 'rojo=1', 'congo=2', 'baz=3']) assert.ok(s.includes(m), `${m} in ${s}`);
    assert.ok(s.indexOf('foo=1') < s.indexOf('bar=2'));
    assert.ok(s.indexOf('bar=2') < s.indexOf('rojo=1'));
    assert.ok(s.indexOf('rojo=1') < s.indexOf('congo=2'));
    assert.ok(s.indexOf('congo=2') < s.indexOf('baz=3'));
  });

  void it('test_tracestate_duplicated_keys', async () => {
    const cases: [string[], (s: string) => boolean][] = [
      [['foo=1,foo=1'], (s) => s.includes('foo=1')],
      [['foo=1,foo=2'], (s) => s.includes('foo=1') || s.includes('foo=2')],
      [['foo=1', 'foo=1'], (s) => s.includes('foo=1')],
      [['foo=1', 'foo=2'], (s) => s.includes('foo=1') || s.includes('foo=2')],
    ];
    for (const [lines, ok] of cases) {
      const { ts } = await keeps([['traceparent', TP0], ...lines.map((l): Header => ['tracestate', l])]);
      assert.ok(ok(str(ts)), `${JSON.stringify(lines)} → ${str(ts)}`);
    }
  });

  void it('test_tracestate_all_allowed_characters', async () => {
    let lcalpha = '';
    for (let c = 0x61; c <= 0x7a; c++) lcalpha += String.fromCharCode(c);
    const keyWithoutVendor = `${lcalpha}0123456789_-*/`;
    const keyWithVendor = `${keyWithoutVendor}@a-z0-9_-*/`;
    let value = '';
    for (const [from, to] of [
      [0x20, 0x2b],
      [0x2d, 0x3c],
      [0x3e, 0x7e],
    ] as const) {
      for (let c = from; c <= to; c++) value += String.fromCharCode(c);
    }
    for (const key of [keyWithoutVendor, keyWithVendor]) {
      const { ts } = await single([
        ['traceparent', TP0],
        ['tracestate', `${key}=${value}`],
      ]);
      assert.equal(ts.get(key), value, key);
    }
  });

  void it('test_tracestate_ows_handling', async () => {
    for (const v of ['foo=1 \t , \t bar=2, \t baz=3', 'foo=1\t \t,\t \tbar=2,\t \tbaz=3']) {
      const { ts } = await single([
        ['traceparent', TP0],
        ['tracestate', v],
      ]);
      assert.deepEqual([ts.get('foo'), ts.get('bar'), ts.get('baz')], ['1', '2', '3'], JSON.stringify(v));
    }
    for (const v of [' foo=1', '\tfoo=1', 'foo=1 ', 'foo=1\t', '\t foo=1 \t']) {
      const { ts } = await keeps([
        ['traceparent', TP0],
        ['tracestate', v],
      ]);
      assert.equal(ts.get('foo'), '1', JSON.stringify(v));
    }
  });

  void it('test_tracestate_key_illegal_characters', async () => {
    for (const [v, key] of [
      ['foo =1', 'foo '],
      ['FOO=1', 'FOO'],
      ['foo.bar=1', 'foo.bar'],
    ] as const) {
      const { ts } = await single([
        ['traceparent', TP0],
        ['tracestate', v],
      ]);
      assert.equal(ts.has(key), false, v);
    }
  });

  void it('test_tracestate_key_illegal_vendor_format', async () => {
    for (const key of ['foo@', 'foo@@bar', 'foo@bar@baz']) {
      const { ts } = await single([
        ['traceparent', TP0],
        ['tracestate', `${key}=1,bar=2`],
      ]);
      assert.equal(ts.get(key), '1', key);
      assert.equal(ts.get('bar'), '2', key);
    }
    const { ts } = await single([
      ['traceparent', TP0],
      ['tracestate', '@foo=1,bar=2'],
    ]);
    assert.equal(ts.has('bar'), false);
  });

  void it('test_tracestate_member_count_limit', async () => {
    const line = (from: number, to: number): string =>
      Array.from({ length: to - from + 1 }, (_, i) => {
        const n = String(from + i).padStart(2, '0');
        return `bar${n}=${n}`;
      }).join(',');
    const ok = await single([['traceparent', TP0], ['tracestate', line(1, 10)], ['tracestate', line(11, 20)], ['tracestate', line(21, 30)], ['tracestate', line(31, 32)]]);
    assert.equal(ok.ts.get('bar01'), '01');
    assert.equal(ok.ts.size, 32);
    const over = await single([['traceparent', TP0], ['tracestate', line(1, 10)], ['tracestate', line(11, 20)], ['tracestate', line(21, 30)], ['tracestate', line(31, 33)]]);
    assert.equal(over.ts.has('bar01'), false);
  });

  void it('test_tracestate_key_length_limit', async () => {
    for (const key of ['z'.repeat(256), `${'t'.repeat(241)}@${'v'.repeat(14)}`, `${'t'.repeat(242)}@v`, `t@${'v'.repeat(15)}`]) {
      const { ts } = await single([
        ['traceparent', TP0],
        ['tracestate', 'foo=1'],
        ['tracestate', `${key}=1`],
      ]);
      assert.equal(ts.get('foo'), '1', key.slice(0, 20));
      assert.equal(ts.get(key), '1', key.slice(0, 20));
    }
    const { ts } = await single([
      ['traceparent', TP0],
      ['tracestate', 'foo=1'],
      ['tracestate', `${'z'.repeat(257)}=1`],
    ]);
    assert.equal(ts.has('foo'), false);
  });

  void it('test_tracestate_value_illegal_characters', async () => {
    const a = await single([
      ['traceparent', TP0],
      ['tracestate', 'foo=bar=baz'],
    ]);
    assert.equal(a.ts.has('foo'), false);
    const b = await single([
      ['traceparent', TP0],
      ['tracestate', 'foo=,bar=3'],
    ]);
    assert.equal(b.ts.has('foo'), false);
    assert.equal(b.ts.has('bar'), false);
  });
});

void describe('AdvancedTest (Level 1)', () => {
  const ids = (responses: Header[][]) => {
    const traceIds = new Set<string>();
    const parentIds = new Set<string>();
    for (const h of responses) {
      const tp = getTraceparent(h);
      traceIds.add(tp.traceId);
      parentIds.add(tp.parentId);
    }
    return { traceIds, parentIds };
  };

  void it('test_multiple_requests_with_valid_traceparent', async () => {
    const { traceIds, parentIds } = ids(await makeRequest([['traceparent', TP]], 3));
    assert.deepEqual([...traceIds], [TID]);
    assert.equal(parentIds.size, 3);
  });

  void it('test_multiple_requests_without_traceparent', async () => {
    const { parentIds } = ids(await makeRequest([], 3));
    assert.equal(parentIds.size, 3);
  });

  void it('test_multiple_requests_with_illegal_traceparent', async () => {
    const { traceIds, parentIds } = ids(await makeRequest([['traceparent', '00-00000000000000000000000000000000-1234567890123456-01']], 3));
    assert.equal(traceIds.has('0'.repeat(32)), false);
    assert.equal(parentIds.size, 3);
  });
});

void describe('TraceContext2Test (Level 2)', () => {
  void it('test_propagates_random_flag', async () => {
    const { tp } = await keeps([['traceparent', '00-12345678901234567890123456789012-1234567890123456-02']]);
    assert.notEqual(tp.parentId, '1234567890123456');
    assert.equal(tp.traceFlags & 0x02, 0x02, 'random flag not set');
  });
});

void describe('Level 2 traceresponse (not in the upstream suite)', () => {
  const traceresponse = (head: string): string | undefined => /\r\ntraceresponse: ([^\r]*)/i.exec(head)?.[1];

  void it('a new trace: the response names it, with the random flag, and the callback belongs to it', async () => {
    const cb = `/cb/${++caseNo}`;
    const r = await rawRequest(`/test?cb=${encodeURIComponent(cb)}&count=1`, []);
    const value = traceresponse(r.head);
    assert.match(value ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-03$/);
    const tp = getTraceparent((await makeRequestHeaders(cb))!);
    assert.equal(tp.traceId, value!.slice(3, 35), 'the client finds its trace from traceresponse');
  });

  void it('a continued trace: the response carries its trace id and the sidecar span, flags as propagated', async () => {
    const r = await rawRequest(`/test?cb=${encodeURIComponent(`/cb/${++caseNo}`)}&count=1`, [['traceparent', '00-12345678901234567890123456789012-1234567890123456-00']]);
    const value = traceresponse(r.head) ?? '';
    assert.match(value, /^00-12345678901234567890123456789012-[0-9a-f]{16}-00$/);
    assert.notEqual(value.slice(36, 52), '1234567890123456');
  });

  void it('a failure the sidecar answers itself also carries traceresponse', async () => {
    const r = await new Promise<{ head: string }>((resolve, reject) => {
      const sock = connect(sidecar.sidecar.outboundPort, '127.0.0.1');
      sock.write('GET / HTTP/1.1\r\nhost: nowhere\r\nconnection: close\r\n\r\n');
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.on('error', reject);
      sock.on('close', () => resolve({ head: Buffer.concat(chunks).toString('latin1') }));
    });
    assert.match(r.head, /^HTTP\/1\.1 503 /);
    assert.match(traceresponse(r.head) ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[23]$/);
  });

  async function makeRequestHeaders(cb: string): Promise<Header[] | undefined> {
    const raw = callbacks.get(`${cb}/0`);
    if (!raw) return undefined;
    const pairs: Header[] = [];
    for (let j = 0; j < raw.length; j += 2) pairs.push([raw[j]!, raw[j + 1]!]);
    return pairs;
  }
});
