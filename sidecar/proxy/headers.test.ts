import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { downstreamResponseHeaders, serviceOfHost, splitAuthority, upstreamRequestHeaders } from './headers.ts';

void describe('upstreamRequestHeaders', () => {
  void it('drops hop-by-hop, Connection-listed and trace headers; keeps the rest and baggage', () => {
    const out = upstreamRequestHeaders({
      host: 'b',
      connection: 'keep-alive, X-Hop',
      'keep-alive': 'timeout=5',
      'x-hop': '1',
      'transfer-encoding': 'chunked',
      te: 'trailers',
      upgrade: 'h2c',
      'proxy-authorization': 'Basic x',
      expect: '100-continue',
      traceparent: '00-...',
      tracestate: 'a=1',
      b3: '1',
      'x-b3-traceid': 'x',
      'x-request-id': 'r',
      'x-tracemesh-source-workload': 'evil',
      'x-forwarded-client-cert': 'By=forged;URI=forged',
      ':path': '/pseudo-headers-never-pass',
      baggage: 'k=v',
      'content-type': 'text/plain',
      'content-length': '3',
      'set-cookie': ['a=1', 'b=2'],
    });
    assert.deepEqual(out, { host: 'b', baggage: 'k=v', 'content-type': 'text/plain', 'content-length': '3', 'set-cookie': ['a=1', 'b=2'] });
  });

  void it('leaves Host out for an HTTP/2 upstream (it goes as :authority)', () => {
    assert.deepEqual(upstreamRequestHeaders({ host: 'b', accept: '*/*', connection: 'keep-alive' }, true), { accept: '*/*' });
  });
});

void describe('downstreamResponseHeaders', () => {
  void it('drops hop-by-hop headers but keeps trace-ish response headers', () => {
    const out = downstreamResponseHeaders({ ':status': '200', connection: 'close', 'keep-alive': 'x', 'transfer-encoding': 'chunked', traceresponse: 't', 'x-request-id': 'r' } as never);
    assert.deepEqual(out, { traceresponse: 't', 'x-request-id': 'r' });
  });
});

void describe('splitAuthority', () => {
  void it('splits host and port, lowercases, handles IPv6', () => {
    assert.deepEqual(splitAuthority('b'), { host: 'b', port: undefined });
    assert.deepEqual(splitAuthority('B:8080'), { host: 'b', port: 8080 });
    assert.deepEqual(splitAuthority('[::1]:80'), { host: '::1', port: 80 });
    assert.deepEqual(splitAuthority('[::1]'), { host: '::1', port: undefined });
    assert.deepEqual(splitAuthority(''), { host: '', port: undefined });
    assert.deepEqual(splitAuthority('b:notaport'), { host: 'b', port: undefined });
  });
});

void describe('serviceOfHost', () => {
  void it('maps Kubernetes service names to the short name', () => {
    assert.equal(serviceOfHost('b'), 'b');
    assert.equal(serviceOfHost('b.default.svc'), 'b');
    assert.equal(serviceOfHost('b.prod.svc.cluster.local'), 'b');
    assert.equal(serviceOfHost('b.prod.svc.cluster.local.'), 'b');
    assert.equal(serviceOfHost('api.example.com'), 'api.example.com');
  });
});
