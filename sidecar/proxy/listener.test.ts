// The proxy port's protocol sniffing against real sockets: the HTTP/2 preface in one write or
// byte by byte, HTTP/1.1 methods that share its first letter, and connections that say nothing.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { sniffH2Preface } from './listener.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

let server: Server;
let port: number;
/** What the server decided for each connection, and the bytes the hand-off then read. */
const decisions: Array<{ h2: boolean; bytes: Buffer }> = [];
let timeoutMs = 5000;

before(async () => {
  server = createServer((socket: Socket) => {
    socket.on('error', () => {});
    sniffH2Preface(socket, timeoutMs, (h2) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => {
        decisions.push({ h2, bytes: Buffer.concat(chunks) });
        socket.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Sends `parts` (each its own write, after the previous one was flushed) and half-closes. */
async function send(parts: Buffer[]): Promise<{ h2: boolean; bytes: Buffer }> {
  const before = decisions.length;
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  for (const p of parts) await new Promise<void>((resolve) => socket.write(p, () => resolve()));
  socket.end();
  socket.resume();
  await new Promise<void>((resolve) => socket.once('close', resolve));
  assert.equal(decisions.length, before + 1);
  return decisions[before] as { h2: boolean; bytes: Buffer };
}

void describe('sniffH2Preface', () => {
  void it('the preface in one write is HTTP/2, and the hand-off reads it whole', async () => {
    const all = Buffer.concat([PREFACE, Buffer.from('frames')]);
    const d = await send([all]);
    assert.equal(d.h2, true);
    assert.deepEqual(d.bytes, all);
  });

  void it('the preface byte by byte is HTTP/2', async () => {
    const d = await send([...PREFACE].map((b) => Buffer.from([b])));
    assert.equal(d.h2, true);
    assert.deepEqual(d.bytes, PREFACE);
  });

  void it('HTTP/1.1 requests, those starting with P included, are decided without waiting for more', async () => {
    for (const line of ['GET / HTTP/1.1\r\n\r\n', 'POST / HTTP/1.1\r\n\r\n', 'PUT / HTTP/1.1\r\n\r\n', 'PATCH / HTTP/1.1\r\n\r\n', 'PRI / HTTP/1.1\r\n\r\n']) {
      const bytes = Buffer.from(line, 'latin1');
      const d = await send([bytes.subarray(0, 2), bytes.subarray(2)]);
      assert.equal(d.h2, false, line);
      assert.deepEqual(d.bytes, bytes);
    }
  });

  void it('a connection that ends inside the preface or says nothing is closed without a decision', async () => {
    const before = decisions.length;
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.once('connect', resolve));
    s.end(PREFACE.subarray(0, 10));
    s.resume();
    await new Promise<void>((resolve) => s.once('close', resolve));
    assert.equal(decisions.length, before);

    timeoutMs = 50;
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => {});
    silent.resume();
    await new Promise<void>((resolve) => silent.once('close', resolve));
    timeoutMs = 5000;
    assert.equal(decisions.length, before);
  });
});
