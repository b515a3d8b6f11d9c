import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TracemeshError } from '../common/errors.ts';
import { MESH_ERROR, MESH_ERROR_HEADER } from '../common/semconv.ts';
import { ProxyError, synthesizeResponse, upstreamError } from './errors.ts';
import { httpRequest, startServer } from './testing/harness.ts';

const errno = (code: string, message = code) => Object.assign(new Error(message), { code });

void describe('upstreamError', () => {
  const cases: Array<[string, string, number]> = [
    ['ECONNREFUSED', MESH_ERROR.connectionRefused, 502],
    ['EHOSTUNREACH', MESH_ERROR.connectionRefused, 502],
    ['ENOTFOUND', MESH_ERROR.connectionRefused, 502],
    ['ECONNRESET', MESH_ERROR.upstreamReset, 502],
    ['EPIPE', MESH_ERROR.upstreamReset, 502],
    ['ETIMEDOUT', MESH_ERROR.timeout, 504],
    ['HPE_INVALID_CONSTANT', MESH_ERROR.upstreamReset, 502],
  ];
  for (const [code, mesh, status] of cases) {
    void it(`maps ${code} to ${mesh}`, () => {
      const e = upstreamError(errno(code), '127.0.0.1:1');
      assert.ok(e instanceof ProxyError && e instanceof TracemeshError);
      assert.equal(e.code, mesh);
      assert.equal(e.status, status);
      assert.match(e.message, /127\.0\.0\.1:1/);
    });
  }
  void it('handles non-Error values', () => {
    assert.equal(upstreamError('weird', 'x').code, MESH_ERROR.upstreamReset);
    assert.equal(upstreamError(null, 'x').code, MESH_ERROR.upstreamReset);
  });
});

void describe('synthesizeResponse', () => {
  void it('writes status, error header and the JSON body', async () => {
    const srv = await startServer((_req, res) => {
      synthesizeResponse(res, new ProxyError(MESH_ERROR.noEndpoint, 'no b'), { service: 'a', pod: 'a-1' }, 'abc', false);
    });
    try {
      const r = await httpRequest(srv.port);
      assert.equal(r.status, 503);
      assert.equal(r.headers[MESH_ERROR_HEADER], 'NO_ENDPOINT');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(r.body), { error: { code: 'NO_ENDPOINT', message: 'no b', hop: { service: 'a', pod: 'a-1' }, trace_id: 'abc' } });
    } finally {
      await srv.close();
    }
  });
});
