// xDS protocol tests against a real control plane on 127.0.0.1:0, with raw ADS streams that
// send exactly the requests a client would: ACK, NACK, subscription changes, reconnects with
// old versions, unknown type URLs, garbage, and a client without a mesh certificate.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createLogger, silentLogger } from '../../common/logger.ts';
import { TYPE_URL } from '../../common/xds/protos.ts';
import { bootstrapTokenAuthenticator } from '../ca/authn/bootstrap-token.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../ca/pki/authority.ts';
import { pollUntil } from '../ca/testing.ts';
import { startControlPlane, type ControlPlane } from '../controlplane.ts';
import { serviceKey, type WorkloadEndpoint } from '../discovery/model.ts';
import { RawAdsStream, resourcesOf } from './testing.ts';

const CLA = TYPE_URL.endpoint;
const CDS = TYPE_URL.cluster;

function ep(host: string, port: number, extra: Partial<WorkloadEndpoint> = {}): WorkloadEndpoint {
  return { host, port, pod: `pod-${port}`, node: 'n1', namespace: 'shop', serviceAccount: 'sa', labels: {}, ready: true, serving: true, terminating: false, source: 'test', ...extra };
}

function capture(): { lines: Array<Record<string, unknown>>; logger: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ component: 'test' }, 'debug', (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>));
  return { lines, logger };
}

void describe('ADS protocol (plaintext control plane)', () => {
  let ca: CertificateAuthority;
  let cp: ControlPlane;
  const log = capture();
  const streams: RawAdsStream[] = [];
  const open = (): RawAdsStream => {
    const s = new RawAdsStream(cp.address);
    streams.push(s);
    return s;
  };

  before(async () => {
    ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    cp = await startControlPlane({
      ca,
      authenticators: [bootstrapTokenAuthenticator('cluster.local', new Map())],
      port: 0,
      transport: { kind: 'plaintext' },
      debounceMs: 20,
      registration: false,
      debugPort: 0,
      logger: log.logger,
    });
    cp.registry.set('test', serviceKey('shop', 'cart'), [ep('127.0.0.1', 9001)]);
    cp.registry.set('test', serviceKey('shop', 'pay'), [ep('127.0.0.1', 9002)]);
  });
  after(async () => {
    for (const s of streams) s.close();
    await cp.close();
    ca.close();
  });

  void it('answers a wildcard CDS request with every cluster, and an ACK makes the client SYNCED', async () => {
    const s = open();
    s.send({ type_url: CDS, node: { id: 'sidecar~a' } });
    const r = await s.next(CDS);
    const names = resourcesOf<{ name: string }>(r).map((c) => c.name).sort();
    assert.deepEqual(names, ['cart.shop.svc.cluster.local', 'pay.shop.svc.cluster.local']);
    assert.ok(r.nonce !== '' && r.version_info !== '');
    const status = () => cp.xds.status().find((c) => c.nodeId === 'sidecar~a')?.types.find((t) => t.typeUrl === CDS)?.state;
    assert.equal(status(), 'STALE');
    s.send({ type_url: CDS, version_info: r.version_info, response_nonce: r.nonce });
    await pollUntil('SYNCED', () => (status() === 'SYNCED' ? true : undefined));
  });

  void it('pushes only the changed ClusterLoadAssignment, only to the clients subscribed to it', async () => {
    const a = open();
    const b = open();
    a.send({ type_url: CLA, node: { id: 'eds-a' }, resource_names: ['cart.shop.svc.cluster.local', 'pay.shop.svc.cluster.local'] });
    b.send({ type_url: CLA, node: { id: 'eds-b' }, resource_names: ['pay.shop.svc.cluster.local'] });
    const ra = await a.next(CLA);
    const rb = await b.next(CLA);
    assert.equal(ra.resources.length, 2);
    assert.equal(rb.resources.length, 1);
    a.send({ type_url: CLA, version_info: ra.version_info, response_nonce: ra.nonce, resource_names: ['cart.shop.svc.cluster.local', 'pay.shop.svc.cluster.local'] });
    b.send({ type_url: CLA, version_info: rb.version_info, response_nonce: rb.nonce, resource_names: ['pay.shop.svc.cluster.local'] });
    cp.registry.set('test', serviceKey('shop', 'cart'), [ep('127.0.0.1', 9001), ep('127.0.0.1', 9003)]);
    const pushed = await a.next(CLA);
    const clas = resourcesOf<{ cluster_name: string; endpoints: { lb_endpoints: unknown[] }[] }>(pushed);
    assert.deepEqual(clas.map((c) => c.cluster_name), ['cart.shop.svc.cluster.local']);
    assert.equal(clas[0]!.endpoints[0]!.lb_endpoints.length, 2);
    assert.notEqual(pushed.version_info, ra.version_info);
    // b is subscribed to pay only: nothing for it.
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(b.pending(CLA).length, 0);
  });

  void it('logs a NACK with the error detail and does not resend that version; the next change is sent', async () => {
    const s = open();
    s.send({ type_url: CLA, node: { id: 'nacker' }, resource_names: ['pay.shop.svc.cluster.local'] });
    const r = await s.next(CLA);
    s.send({ type_url: CLA, version_info: '', response_nonce: r.nonce, resource_names: ['pay.shop.svc.cluster.local'], error_detail: { code: 3, message: 'endpoint 0: port out of range' } });
    const line = await pollUntil('the NACK log line', () => log.lines.find((l) => l['msg'] === 'xDS client rejected a response (NACK); it is not resent' && l['errorDetail'] === 'endpoint 0: port out of range'));
    assert.equal(line['version'], r.version_info);
    const state = () => cp.xds.status().find((c) => c.nodeId === 'nacker')?.types[0];
    assert.equal(state()?.state, 'NACKED');
    assert.equal(state()?.nack, 'endpoint 0: port out of range');
    await new Promise((res) => setTimeout(res, 150));
    assert.equal(s.pending(CLA).length, 0, 'the NACKed version is not resent');
    cp.registry.set('test', serviceKey('shop', 'pay'), [ep('127.0.0.1', 9002), ep('127.0.0.1', 9004)]);
    const next = await s.next(CLA);
    assert.notEqual(next.version_info, r.version_info);
  });

  void it('answers a widened subscription with the added resource only', async () => {
    const s = open();
    s.send({ type_url: CLA, node: { id: 'widen' }, resource_names: ['pay.shop.svc.cluster.local'] });
    const r = await s.next(CLA);
    s.send({ type_url: CLA, version_info: r.version_info, response_nonce: r.nonce, resource_names: ['pay.shop.svc.cluster.local', 'cart.shop.svc.cluster.local'] });
    const r2 = await s.next(CLA);
    assert.deepEqual(resourcesOf<{ cluster_name: string }>(r2).map((c) => c.cluster_name), ['cart.shop.svc.cluster.local']);
  });

  void it('gives a client reconnecting with its last versions the full state under a new nonce', async () => {
    const s1 = open();
    s1.send({ type_url: CDS, node: { id: 'recon' } });
    const r1 = await s1.next(CDS);
    s1.close();
    const s2 = open();
    s2.send({ type_url: CDS, node: { id: 'recon' }, version_info: r1.version_info });
    const r2 = await s2.next(CDS);
    assert.equal(r2.resources.length, r1.resources.length);
    assert.notEqual(r2.nonce, r1.nonce);
  });

  void it('answers an unknown type URL with an empty response and keeps the stream', async () => {
    const s = open();
    s.send({ type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', node: { id: 'sds' }, resource_names: ['default'] });
    const r = await s.next('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
    assert.equal(r.resources.length, 0);
    s.send({ type_url: CDS });
    assert.ok((await s.next(CDS)).resources.length >= 2);
  });

  void it('ignores a request answering a superseded nonce', async () => {
    const s = open();
    s.send({ type_url: CLA, node: { id: 'stale-nonce' }, resource_names: ['cart.shop.svc.cluster.local'] });
    const r = await s.next(CLA);
    s.send({ type_url: CLA, version_info: 'x', response_nonce: 'not-the-nonce', resource_names: ['cart.shop.svc.cluster.local'], error_detail: { code: 3, message: 'stale' } });
    await new Promise((res) => setTimeout(res, 100));
    const st = cp.xds.status().find((c) => c.nodeId === 'stale-nonce')?.types[0];
    assert.equal(st?.state, 'STALE');
    assert.equal(st?.sentVersion, r.version_info);
  });

  void it('disconnects a client that sends garbage, and keeps serving everyone else', async () => {
    const client = new grpc.Client(cp.address, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    call.on('data', () => {});
    call.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x00, 0x7a]));
    const st = await status;
    assert.notEqual(st.code, grpc.status.OK);
    client.close();
    const s = open();
    s.send({ type_url: CDS, node: { id: 'after-garbage' } });
    assert.ok((await s.next(CDS)).resources.length >= 2);
  });

  void it('refuses a request with too many resource names', async () => {
    const s = open();
    s.send({ type_url: CLA, node: { id: 'greedy' }, resource_names: Array.from({ length: 10_001 }, (_, i) => `s${i}`) });
    await assert.rejects(s.next(CLA), /stream closed/);
    assert.equal(s.error?.code, grpc.status.INVALID_ARGUMENT);
  });

  void it('serves /debug/syncz for proxy-status', async () => {
    const res = await fetch(`${cp.debugUrl}/debug/syncz`);
    const body = (await res.json()) as Array<{ nodeId: string }>;
    assert.ok(body.some((c) => c.nodeId === 'sidecar~a'));
  });
});

void describe('ADS over mTLS', () => {
  void it('gives a client without a mesh certificate no configuration', async () => {
    const ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    const cp = await startControlPlane({ ca, authenticators: [bootstrapTokenAuthenticator('cluster.local', new Map())], port: 0, registration: false, logger: silentLogger });
    try {
      const creds = grpc.credentials.createSsl(Buffer.from(ca.trustBundle().pem), null, null, { checkServerIdentity: () => undefined });
      const s = new RawAdsStream(cp.address, creds, { 'grpc.ssl_target_name_override': 'localhost' });
      s.send({ type_url: CDS, node: { id: 'anon' } });
      await assert.rejects(s.next(CDS), /stream closed/);
      assert.equal(s.error?.code, grpc.status.UNAUTHENTICATED);
      s.close();
    } finally {
      await cp.close();
      ca.close();
    }
  });
});
