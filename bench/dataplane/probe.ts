// One request of each kind through a route before it is loaded, so a route that cannot carry
// HTTP/2 or gRPC yet is reported as n/a with the reason instead of as a failed load.

import { connect } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { GRPC_METHOD } from './grpc-load.ts';

/** undefined when an h2c (prior knowledge) GET answers 200, else what went wrong. */
export function probeH2(url: string, headers: Readonly<Record<string, string>>, timeoutMs = 3000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const session = connect(url);
    const done = (reason: string | undefined): void => {
      clearTimeout(timer);
      session.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done(`no HTTP/2 answer within ${timeoutMs} ms`), timeoutMs);
    session.on('error', (e) => done(`the route's entry listener does not answer HTTP/2 cleartext (h2c prior knowledge): ${e.message}`));
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) extra[k.toLowerCase() === 'host' ? ':authority' : k] = v;
    const req = session.request({ ':path': '/', ...extra });
    req.on('response', (h) => {
      const status = Number(h[':status']);
      req.resume();
      req.on('end', () => done(status === 200 ? undefined : `HTTP/2 request answered ${status}`));
    });
    req.on('error', (e) => done(`the route's entry listener does not answer HTTP/2 cleartext (h2c prior knowledge): ${e.message}`));
    req.end();
  });
}

/** undefined when one unary call succeeds, else the gRPC status. */
export function probeGrpc(target: string, authority: string | undefined, timeoutMs = 3000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const client = new grpc.Client(target, grpc.credentials.createInsecure(), authority ? { 'grpc.default_authority': authority } : {});
    const id = (b: Buffer): Buffer => b;
    client.makeUnaryRequest(GRPC_METHOD, id, id, Buffer.alloc(0), { deadline: Date.now() + timeoutMs }, (err) => {
      client.close();
      // grpc-js details carry a timestamp and an empty "Resolution note"; keep the message.
      const details = err?.details.replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/g, '').replace(/\.?\s*Resolution note:\s*$/, '');
      resolve(err ? `gRPC unary call failed: ${err.code} ${grpc.status[err.code] ?? ''} ${details}`.replace(/\s+/g, ' ').trim() : undefined);
    });
  });
}
