import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../common/errors.ts';
import { createLogger } from '../../common/logger.ts';
import { waitFor } from '../testing/harness.ts';
import { FileEndpointSource, parseEndpointsFile } from './file-source.ts';
import { parseAddress, type EndpointSnapshot } from './endpoints.ts';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tracemesh-endpoints-'));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const doc = (services: unknown) => JSON.stringify({ services });

void describe('parseAddress', () => {
  void it('parses host:port, hostnames and bracketed IPv6', () => {
    assert.deepEqual(parseAddress('127.0.0.1:15006'), { host: '127.0.0.1', port: 15006 });
    assert.deepEqual(parseAddress('b-1.default:80'), { host: 'b-1.default', port: 80 });
    assert.deepEqual(parseAddress('[::1]:15006'), { host: '::1', port: 15006 });
  });
  void it('rejects missing or out-of-range ports and junk', () => {
    for (const a of ['127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', ':80', 'a b:80', '::1:80', '']) assert.equal(parseAddress(a), undefined, a);
  });
});

void describe('parseEndpointsFile', () => {
  void it('builds a snapshot with endpoint metadata', () => {
    const s = parseEndpointsFile(
      doc({ b: [{ address: '127.0.0.1:15006', pod: 'b-1', node: 'node-2', namespace: 'default', zone: 'z-1', weight: 3, identity: 'spiffe://cluster.local/ns/default/sa/b' }], c: [] }),
      'e.json',
    );
    assert.deepEqual(s.get('b'), [
      { address: '127.0.0.1:15006', host: '127.0.0.1', port: 15006, pod: 'b-1', node: 'node-2', namespace: 'default', zone: 'z-1', weight: 3, identity: 'spiffe://cluster.local/ns/default/sa/b' },
    ]);
    assert.deepEqual(s.get('c'), []);
  });

  const cases: Array<[string, string, RegExp]> = [
    ['bad JSON', '{"services":', /e\.json is not valid JSON/],
    ['missing services', '{}', /e\.json is invalid: services: /],
    ['bad address', doc({ b: [{ address: 'nowhere' }] }), /e\.json is invalid: services\.b\[0\]\.address: must be host:port/],
    ['address not a string', doc({ b: [{ address: 15006 }] }), /services\.b\[0\]\.address/],
    ['unknown field', doc({ b: [{ address: '127.0.0.1:1', colour: 'red' }] }), /services\.b\[0\]/],
    ['negative weight', doc({ b: [{ address: '127.0.0.1:1', weight: -1 }] }), /services\.b\[0\]\.weight/],
    ['empty pod', doc({ b: [{ address: '127.0.0.1:1', pod: '' }] }), /services\.b\[0\]\.pod/],
    ['bad service name', doc({ 'Bad Name': [] }), /services\.Bad Name/],
    ['list is not an array', doc({ b: { address: '127.0.0.1:1' } }), /services\.b/],
    ['identity not a SPIFFE ID', doc({ b: [{ address: '127.0.0.1:1', identity: 'b' }] }), /services\.b\[0\]\.identity: must be a SPIFFE ID/],
  ];
  for (const [name, text, message] of cases) {
    void it(`names the file and field for ${name}`, () => {
      assert.throws(
        () => parseEndpointsFile(text, 'e.json'),
        (err: unknown) => err instanceof ConfigError && err.code === 'CONFIG_INVALID' && message.test(err.message),
      );
    });
  }
});

void describe('FileEndpointSource', () => {
  void it('fails to open a missing or invalid file with a ConfigError naming it', async () => {
    const dir = await tempDir();
    const logger = createLogger({}, 'error', () => {});
    await assert.rejects(FileEndpointSource.open(join(dir, 'missing.json'), { logger }), (e: unknown) => e instanceof ConfigError && /missing\.json/.test(e.message));
    await writeFile(join(dir, 'bad.json'), doc({ b: [{ address: 'x' }] }));
    await assert.rejects(FileEndpointSource.open(join(dir, 'bad.json'), { logger }), /bad\.json is invalid/);
  });

  void it('reloads on change, keeps the old snapshot on an invalid edit, and follows rename-saves', async () => {
    const dir = await tempDir();
    const file = join(dir, 'endpoints.json');
    await writeFile(file, doc({ b: [{ address: '127.0.0.1:1001' }] }));
    const warnings: string[] = [];
    const logger = createLogger({}, 'warn', (l) => warnings.push(l));
    const results: string[] = [];
    const source = await FileEndpointSource.open(file, { logger, debounceMs: 10, onReload: (r) => results.push(r) });
    try {
      const seen: EndpointSnapshot[] = [];
      source.subscribe((s) => seen.push(s));
      assert.equal(source.current().get('b')?.[0]?.port, 1001);

      await writeFile(file, doc({ b: [{ address: '127.0.0.1:1002' }] }));
      await waitFor(() => (source.current().get('b')?.[0]?.port === 1002 ? true : undefined), 'reload after write');
      assert.equal(seen.length, 1);

      await writeFile(file, '{ "services": { "b": [ { "address": "oops" } ] } }');
      await waitFor(() => (results.includes('invalid') ? true : undefined), 'invalid reload noticed');
      assert.equal(source.current().get('b')?.[0]?.port, 1002, 'previous snapshot kept');
      assert.equal(seen.length, 1, 'listeners never see an invalid snapshot');
      assert.ok(warnings.some((w) => w.includes('keeping the previous endpoints') && w.includes('services.b[0].address')));

      // Editors and ConfigMaps replace the file by rename.
      const tmp = join(dir, '.endpoints.json.tmp');
      await writeFile(tmp, doc({ b: [{ address: '127.0.0.1:1003' }], c: [{ address: '127.0.0.1:2001' }] }));
      await rename(tmp, file);
      await waitFor(() => (source.current().get('c') !== undefined ? true : undefined), 'reload after rename');
      assert.equal(source.current().get('b')?.[0]?.port, 1003);
      assert.equal(seen.length, 2);
      assert.deepEqual(results.filter((r) => r === 'ok').length, 2);
    } finally {
      source.close();
      source.close();
    }
  });

  void it('reload() with unchanged content publishes nothing', async () => {
    const dir = await tempDir();
    const file = join(dir, 'e.json');
    await writeFile(file, doc({ b: [] }));
    const source = await FileEndpointSource.open(file, { logger: createLogger({}, 'error', () => {}) });
    let calls = 0;
    source.subscribe(() => calls++);
    await source.reload();
    assert.equal(calls, 0);
    source.close();
  });
});
