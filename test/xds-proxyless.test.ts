// Interop with a real third-party xDS client: grpc-js with @grpc/grpc-js-xds dials
// `xds:///greeter.shop` using a bootstrap file that tracemesh writes, and resolves and
// balances across the endpoints that two gRPC servers self-registered with the control
// plane (over mTLS, with certificates from the mesh CA). When one endpoint leaves, the
// client stops using it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { CaClient } from '../common/ca/client.ts';
import { silentLogger } from '../common/logger.ts';
import { bootstrapTokenAuthenticator } from '../controlplane/ca/authn/bootstrap-token.ts';
import { clientCertificateAuthenticator } from '../controlplane/ca/authn/client-cert.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../controlplane/ca/pki/authority.ts';
import { pollUntil } from '../controlplane/ca/testing.ts';
import { startControlPlane, type ControlPlane } from '../controlplane/controlplane.ts';
import { writeXdsBootstrap } from '../controlplane/xds/bootstrap.ts';
import { XdsClient } from '../sidecar/xds/client.ts';

const METHOD = {
  path: '/test.Greeter/Hello',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
} as const;

const Greeter = grpc.makeGenericClientConstructor({ Hello: METHOD }, 'Greeter');

async function startGreeter(name: string): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService({ Hello: METHOD }, { Hello: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port };
}

void describe('proxyless gRPC over xds:///', () => {
  let ca: CertificateAuthority;
  let cp: ControlPlane;
  let dir: string;
  const greeters: { server: grpc.Server; port: number }[] = [];
  const registrars: XdsClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tm-proxyless-'));
    ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    const tokens = new Map([['greeter-token-0123456789abcdef', { namespace: 'shop', serviceAccount: 'greeter' }]]);
    cp = await startControlPlane({
      ca,
      authenticators: [clientCertificateAuthenticator('cluster.local'), bootstrapTokenAuthenticator('cluster.local', tokens)],
      port: 0,
      xdsPlaintextPort: 0,
      debounceMs: 20,
      logger: silentLogger,
    });
    const caClient = new CaClient({ address: cp.address, transport: { kind: 'tls', rootCertsPem: ca.trustBundle().pem, serverSpiffeId: cp.caServer.serverSpiffeId! }, token: 'greeter-token-0123456789abcdef' });
    for (const name of ['greeter-1', 'greeter-2']) {
      const g = await startGreeter(name);
      greeters.push(g);
      const cert = await caClient.requestCertificate();
      // Each server registers itself the way a sidecar does: node metadata on an mTLS ADS stream.
      const r = new XdsClient({
        address: cp.address,
        transport: { kind: 'mtls', identity: () => ({ certChainPem: cert.certChainPem, privateKeyPem: cert.privateKeyPem, trustBundlePem: [cert.rootCertPem] }), serverSpiffeId: cp.caServer.serverSpiffeId! },
        nodeId: `sidecar~${name}.shop`,
        namespace: 'shop',
        metadata: { TRACEMESH_REGISTER: 'true', TRACEMESH_SERVICE: 'greeter', TRACEMESH_NAMESPACE: 'shop', TRACEMESH_POD: name, TRACEMESH_INBOUND_ADDRESS: `127.0.0.1:${g.port}` },
        logger: silentLogger,
      });
      r.start();
      registrars.push(r);
    }
    caClient.close();
    await pollUntil('two registered greeters', () => (cp.registry.services().get('shop/greeter')?.endpoints.length === 2 ? true : undefined));
    const bootstrap = join(dir, 'bootstrap.json');
    await writeXdsBootstrap(bootstrap, { serverUri: cp.plaintextXdsAddress!, nodeId: 'proxyless~client.shop', namespace: 'shop' });
    process.env['GRPC_XDS_BOOTSTRAP'] = bootstrap;
    grpcXds.register();
  });

  after(async () => {
    for (const r of registrars) r.close();
    for (const g of greeters) g.server.forceShutdown();
    await cp.close();
    ca.close();
    await rm(dir, { recursive: true, force: true });
  });

  const hello = (client: grpc.Client): Promise<string> =>
    new Promise((resolve, reject) => {
      (client as unknown as { Hello(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Buffer>): void }).Hello(
        Buffer.alloc(0),
        new grpc.Metadata(),
        { deadline: Date.now() + 5000 },
        (err, res) => (err ? reject(err) : resolve(String(res))),
      );
    });

  void it('resolves the service through LDS/RDS/CDS/EDS and round-robins across both endpoints', async () => {
    const client = new Greeter('xds:///greeter.shop', grpc.credentials.createInsecure());
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) seen.add(await hello(client));
      assert.deepEqual([...seen].sort(), ['greeter-1', 'greeter-2']);
      const status = cp.plaintextXds!.status().find((c) => c.nodeId === 'proxyless~client.shop');
      assert.ok(status, 'the proxyless client shows in proxy-status');
      const states = Object.fromEntries(status.types.map((t) => [t.typeUrl.split('.').pop(), t.state]));
      assert.deepEqual(states, { Listener: 'SYNCED', RouteConfiguration: 'SYNCED', Cluster: 'SYNCED', ClusterLoadAssignment: 'SYNCED' });

      // greeter-2 shuts down cleanly: it leaves the registry at once, and the client follows.
      registrars[1]!.close();
      await pollUntil('greeter-2 deregistered', () => (cp.registry.services().get('shop/greeter')?.endpoints.length === 1 ? true : undefined));
      await pollUntil('the client to use greeter-1 only', async () => {
        const answers = new Set<string>();
        for (let i = 0; i < 6; i++) answers.add(await hello(client));
        return answers.size === 1 && answers.has('greeter-1') ? true : undefined;
      });
    } finally {
      client.close();
    }
  });
});
