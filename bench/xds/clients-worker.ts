// A share of the simulated ADS clients, in a process of its own (see run.ts). Clients
// [from, to) subscribe like sidecars and ACK everything; for each watched change the worker
// reports, per subscribed client, when the new endpoint arrived.

import * as grpc from '@grpc/grpc-js';
import { TYPE_URL, unpackAny, type DiscoveryResponse } from '../../common/xds/protos.ts';
import { RawAdsStream } from '../../controlplane/xds/testing.ts';

const [address = '', fromS = '0', toS = '0', servicesS = '1000', edsS = '1000'] = process.argv.slice(2);
const from = Number(fromS);
const to = Number(toS);
const S = Number(servicesS);
const E = Number(edsS);
const fq = (i: number): string => `svc-${i}.bench.svc.cluster.local`;
const subscribers = new Map<number, number[]>();
const watches = new Map<number, { at: number; waiting: Set<number>; latencies: number[]; timer: NodeJS.Timeout }>();
let initial = 0;
const streams: RawAdsStream[] = [];
let channel: grpc.Client | undefined;

function finish(port: number): void {
  const w = watches.get(port);
  if (w === undefined) return;
  watches.delete(port);
  clearTimeout(w.timer);
  process.send?.({ cmd: 'seen', port, latencies: w.latencies, missing: w.waiting.size });
}

for (let c = from; c < to; c++) {
  const opts = (c - from) % 50 === 0 || channel === undefined ? {} : ({ channelOverride: channel.getChannel() } as grpc.ChannelOptions);
  const s = new RawAdsStream(address, grpc.credentials.createInsecure(), opts);
  if ((c - from) % 50 === 0) channel = s.client;
  streams.push(s);
  const names: string[] = [];
  for (let k = 0; k < E; k++) {
    const svc = (c * 7 + k) % S;
    names.push(fq(svc));
    (subscribers.get(svc) ?? subscribers.set(svc, []).get(svc)!).push(c);
  }
  let gotInitial = false;
  s.call.on('data', (r: DiscoveryResponse) => {
    s.send({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: r.type_url === TYPE_URL.endpoint ? names : [] });
    if (r.type_url !== TYPE_URL.endpoint) return;
    if (!gotInitial) {
      gotInitial = true;
      if (++initial === to - from) process.send?.({ cmd: 'ready' });
      return;
    }
    if (watches.size === 0) return;
    const now = Date.now();
    for (const any of r.resources) {
      const cla = unpackAny<{ endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { port_value?: number } } } }[] }[] }>(any);
      for (const le of cla.endpoints?.[0]?.lb_endpoints ?? []) {
        const port = le.endpoint?.address?.socket_address?.port_value ?? 0;
        const w = watches.get(port);
        if (w !== undefined && w.waiting.delete(c)) {
          w.latencies.push(now - w.at);
          if (w.waiting.size === 0) finish(port);
        }
      }
    }
  });
  s.send({ type_url: TYPE_URL.cluster, node: { id: `sidecar~bench-${c}.bench` } });
  s.send({ type_url: TYPE_URL.endpoint, resource_names: names });
}

process.on('message', (m: { cmd: string; port?: number; svc?: number; at?: number }) => {
  if (m.cmd === 'watch') {
    const port = m.port ?? 0;
    const waiting = new Set(subscribers.get(m.svc ?? -1) ?? []);
    watches.set(port, { at: m.at ?? Date.now(), waiting, latencies: [], timer: setTimeout(() => finish(port), 10_000) });
    if (waiting.size === 0) finish(port);
  } else if (m.cmd === 'stop') {
    for (const s of streams) s.close();
    process.exit(0);
  }
});
