// The server's own request decoder and response encoder against proto-loader's (what every
// grpc-js client uses): the same messages either way.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatedDiscoveryServiceClient, jsonToStruct, packAny, TYPE_URL, unpackAny, type DiscoveryResponse } from '../../common/xds/protos.ts';
import { decodeRequest, encodeResponse } from './wire.ts';

const method = AggregatedDiscoveryServiceClient.service['StreamAggregatedResources'];
if (method === undefined) throw new Error('no StreamAggregatedResources in the ADS definition');
const encodeRequest = method.requestSerialize as (r: object) => Buffer;
const decodeResponse = method.responseDeserialize as (b: Buffer) => DiscoveryResponse;

void describe('xDS wire encoding (server side)', () => {
  void it('decodes a DiscoveryRequest as proto-loader does, names on demand', () => {
    const names = ['a.shop.svc.cluster.local', 'b.shop.svc.cluster.local', 'ü.shop.svc.cluster.local'];
    const bytes = encodeRequest({
      version_info: 'v1',
      node: { id: 'sidecar~a-1.shop', user_agent_name: 'tracemesh-sidecar', metadata: jsonToStruct({ TRACEMESH_SERVICE: 'a', n: 2 }) },
      resource_names: names,
      type_url: TYPE_URL.endpoint,
      response_nonce: 'n7',
      error_detail: { code: 3, message: 'bad cluster' },
    });
    const r = decodeRequest(bytes);
    assert.equal(r.version_info, 'v1');
    assert.equal(r.type_url, TYPE_URL.endpoint);
    assert.equal(r.response_nonce, 'n7');
    assert.equal(r.node?.id, 'sidecar~a-1.shop');
    assert.equal(r.node?.metadata?.fields['TRACEMESH_SERVICE']?.stringValue, 'a');
    assert.equal(r.node?.metadata?.fields['TRACEMESH_SERVICE']?.kind, 'stringValue');
    assert.deepEqual({ code: r.error_detail?.code, message: r.error_detail?.message }, { code: 3, message: 'bad cluster' });
    assert.equal(r.namesCount, 3);
    assert.equal(r.longestNameBytes, Buffer.byteLength(names[2] ?? ''));
    assert.deepEqual(r.resource_names, names);
  });

  void it('gives the same digest to the same names whatever the nonce, another to other names', () => {
    const req = (nonce: string, names: string[]) => decodeRequest(encodeRequest({ type_url: TYPE_URL.endpoint, version_info: nonce, response_nonce: nonce, resource_names: names }));
    assert.equal(req('1', ['a', 'b']).namesDigest, req('2', ['a', 'b']).namesDigest);
    assert.notEqual(req('1', ['a', 'b']).namesDigest, req('1', ['a', 'c']).namesDigest);
    assert.notEqual(req('1', ['a', 'b']).namesDigest, req('1', ['b', 'a']).namesDigest);
    assert.equal(req('1', []).namesDigest, '');
  });

  void it('refuses bytes that are not a DiscoveryRequest', () => {
    assert.throws(() => decodeRequest(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x00, 0x7a])));
    assert.throws(() => decodeRequest(Buffer.from([0x1a, 0x10, 0x61])), /past the end/);
    assert.throws(() => decodeRequest(Buffer.from([0x0b])), /wire type/);
  });

  void it('encodes a response that proto-loader decodes to the same message, resources byte for byte', () => {
    const cla = packAny(TYPE_URL.endpoint, { cluster_name: 'b.shop.svc.cluster.local', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } } }] }] });
    const response: DiscoveryResponse = { version_info: 'x-3', resources: [cla, cla], type_url: TYPE_URL.endpoint, nonce: 'q', control_plane: { identifier: 'tracemesh' } };
    const back = decodeResponse(encodeResponse(response));
    assert.equal(back.version_info, 'x-3');
    assert.equal(back.nonce, 'q');
    assert.equal(back.type_url, TYPE_URL.endpoint);
    assert.equal(back.control_plane?.identifier, 'tracemesh');
    assert.equal(back.resources.length, 2);
    assert.deepEqual(Buffer.from(back.resources[1]?.value ?? []), Buffer.from(cla.value));
    assert.equal(unpackAny<{ cluster_name: string }>(back.resources[0] ?? cla).cluster_name, 'b.shop.svc.cluster.local');
  });
});
