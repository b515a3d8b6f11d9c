// --app-idle-timeout: the sidecar closes its idle keep-alive connections to the local app before
// the app's own keep-alive timeout does (Node's is 5 s), so no request is written on a
// connection the app is closing.

import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'node:net';
import { resolveConfig } from './config.ts';
import { DEFAULT_SIDECAR_LIMITS } from './limits/limits.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from './testing/harness.ts';

void describe('sidecar: idle connections to the local app', () => {
  let app: TestServer;
  let t: TestSidecar;
  const open = new Set<Socket>();
  let accepted = 0;

  before(async () => {
    app = await startServer((_req, res) => res.end('ok'));
    // The app would keep an idle connection for a minute: only the sidecar can close it.
    app.server.keepAliveTimeout = 60_000;
    app.server.on('connection', (s: Socket) => {
      accepted++;
      open.add(s);
      s.on('close', () => open.delete(s));
    });
    t = await startTestSidecar({ service: 'idle', appPort: app.port, limits: { appIdleTimeoutMs: 300 } });
  });

  after(async () => {
    await t.close();
    await app.close();
  });

  void it('defaults to 4 s, under the 5 s keep-alive of a Node app', () => {
    assert.equal(DEFAULT_SIDECAR_LIMITS.appIdleTimeoutMs, 4000);
    assert.equal(resolveConfig({ service: 'x', appPort: 1 }).limits.appIdleTimeoutMs, 4000);
  });

  void it('is refused when not positive, naming the flag', () => {
    assert.throws(() => resolveConfig({ service: 'x', appPort: 1, limits: { appIdleTimeoutMs: 0 } }), /app-idle-timeout/);
  });

  void it('reuses a connection while it is busy, and closes it once idle for the timeout', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await httpRequest(t.sidecar.inboundPort, { path: `/n${i}` })).status, 200);
    assert.equal(accepted, 1, 'back-to-back requests share one pooled connection');
    await waitFor(() => (open.size === 0 ? true : undefined), 'the sidecar to close its idle connection to the app', 10_000);
    assert.equal((await httpRequest(t.sidecar.inboundPort, { path: '/again' })).status, 200, 'a new connection serves the next request');
    assert.equal(accepted, 2);
  });
});
