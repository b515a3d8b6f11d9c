// Test helpers: a raw ADS stream that sends exactly the DiscoveryRequests a test writes and
// queues every response, failing loudly when an expected response does not come.

import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient, jsonToStruct, unpackAny, type DiscoveryRequest, type DiscoveryResponse } from '../../common/xds/protos.ts';

export class RawAdsStream {
  readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  private readonly queue: DiscoveryResponse[] = [];
  private waiters: Array<() => void> = [];
  error: grpc.ServiceError | undefined;
  ended = false;

  constructor(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}) {
    this.client = new AggregatedDiscoveryServiceClient(address, credentials, options);
    const stub = this.client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> };
    this.call = stub.StreamAggregatedResources();
    this.call.on('data', (r: DiscoveryResponse) => {
      this.queue.push(r);
      this.wake();
    });
    this.call.on('error', (err: grpc.ServiceError) => {
      this.error = err;
      this.wake();
    });
    this.call.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  send(request: Partial<Omit<DiscoveryRequest, 'node'>> & { type_url: string; node?: { id: string; metadata?: Record<string, unknown>; user_agent_name?: string } }): void {
    const { node, ...rest } = request;
    const out: Record<string, unknown> = { version_info: '', resource_names: [], response_nonce: '', ...rest };
    if (node !== undefined) out['node'] = { id: node.id, user_agent_name: node.user_agent_name ?? 'test', metadata: jsonToStruct(node.metadata ?? {}) };
    this.call.write(out as unknown as DiscoveryRequest);
  }

  /** The next response (of `typeUrl`, skipping others), or a rejection after `timeoutMs`. */
  async next(typeUrl?: string, timeoutMs = 5000): Promise<DiscoveryResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.queue.findIndex((r) => typeUrl === undefined || r.type_url === typeUrl);
      if (i >= 0) return this.queue.splice(i, 1)[0]!;
      if (this.error !== undefined || this.ended) throw new Error(`stream closed while waiting for ${typeUrl ?? 'a response'}: ${this.error?.details ?? 'ended'}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${typeUrl ?? 'response'} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Responses received and not yet taken. */
  pending(typeUrl?: string): DiscoveryResponse[] {
    return this.queue.filter((r) => typeUrl === undefined || r.type_url === typeUrl);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Decoded resources of a response. */
export function resourcesOf<T = Record<string, unknown>>(response: DiscoveryResponse): T[] {
  return response.resources.map((a) => unpackAny<T>(a));
}
