import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mtlsModeFor, resolveMtlsModes } from './mtls-mode.ts';
import type { MtlsMode, PeerAuthentication, PeerAuthenticationSpec } from './resources.ts';
import type { Workload } from './selection.ts';

function pa(name: string, namespace: string, spec: PeerAuthenticationSpec, creationTimestamp?: string): PeerAuthentication {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: creationTimestamp === undefined ? { name, namespace } : { name, namespace, creationTimestamp },
    spec,
  };
}
const mode = (m: MtlsMode) => ({ mtls: { mode: m } });
const ratings: Workload = { namespace: 'bookinfo', labels: { app: 'ratings' } };
const ROOT = 'tracemesh-system';

void describe('mtlsModeFor', () => {
  void it('is STRICT when nothing says otherwise (tracemesh default), or the configured default', () => {
    assert.equal(mtlsModeFor([], ratings), 'STRICT');
    assert.equal(mtlsModeFor([], ratings, { defaultMode: 'PERMISSIVE' }), 'PERMISSIVE');
  });

  void it('workload selector beats namespace-wide beats mesh-wide', () => {
    const mesh = pa('default', ROOT, mode('DISABLE'));
    const ns = pa('default', 'bookinfo', mode('PERMISSIVE'));
    const wl = pa('ratings', 'bookinfo', { selector: { matchLabels: { app: 'ratings' } }, ...mode('STRICT') });
    assert.equal(mtlsModeFor([mesh], ratings), 'DISABLE');
    assert.equal(mtlsModeFor([mesh, ns], ratings), 'PERMISSIVE');
    assert.equal(mtlsModeFor([wl, ns, mesh], ratings), 'STRICT');
    assert.deepEqual(resolveMtlsModes([wl, ns, mesh], ratings).sources, { mesh: 'tracemesh-system/default', namespace: 'bookinfo/default', workload: 'bookinfo/ratings' });
  });

  void it('UNSET (or no mtls at all) inherits from the next wider scope', () => {
    const mesh = pa('default', ROOT, mode('PERMISSIVE'));
    assert.equal(mtlsModeFor([mesh, pa('ns', 'bookinfo', mode('UNSET'))], ratings), 'PERMISSIVE');
    assert.equal(mtlsModeFor([mesh, pa('ns', 'bookinfo', {})], ratings), 'PERMISSIVE');
    assert.equal(mtlsModeFor([mesh, pa('wl', 'bookinfo', { selector: { matchLabels: { app: 'ratings' } }, mtls: {} })], ratings), 'PERMISSIVE');
    assert.equal(mtlsModeFor([pa('default', ROOT, mode('UNSET'))], ratings), 'STRICT');
  });

  void it('ignores other namespaces, non-matching selectors and root-namespace policies with a selector', () => {
    assert.equal(mtlsModeFor([pa('default', 'other', mode('DISABLE'))], ratings), 'STRICT');
    assert.equal(mtlsModeFor([pa('reviews', 'bookinfo', { selector: { matchLabels: { app: 'reviews' } }, ...mode('DISABLE') })], ratings), 'STRICT');
    assert.equal(mtlsModeFor([pa('ratings', ROOT, { selector: { matchLabels: { app: 'ratings' } }, ...mode('DISABLE') })], ratings), 'STRICT');
    assert.equal(mtlsModeFor([pa('ratings', ROOT, { selector: { matchLabels: { app: 'ratings' } }, ...mode('DISABLE') })], { namespace: ROOT, labels: { app: 'ratings' } }), 'STRICT');
  });

  void it('an empty selector is namespace-wide', () => {
    assert.equal(mtlsModeFor([pa('ns', 'bookinfo', { selector: {}, ...mode('PERMISSIVE') })], ratings), 'PERMISSIVE');
    assert.equal(mtlsModeFor([pa('ns', 'bookinfo', { selector: { matchLabels: {} }, ...mode('PERMISSIVE') })], ratings), 'PERMISSIVE');
  });

  void it('in the root namespace, a selector-less policy is the mesh-wide one', () => {
    assert.equal(mtlsModeFor([pa('default', ROOT, mode('PERMISSIVE'))], { namespace: ROOT, labels: {} }), 'PERMISSIVE');
    assert.equal(mtlsModeFor([pa('default', 'mesh', mode('PERMISSIVE'))], ratings, { rootNamespace: 'mesh' }), 'PERMISSIVE');
  });

  void it('at one scope the oldest policy wins, then the first by name', () => {
    const newer = pa('a', 'bookinfo', mode('DISABLE'), '2025-03-01T00:00:00Z');
    const older = pa('b', 'bookinfo', mode('PERMISSIVE'), '2025-01-01T00:00:00Z');
    assert.equal(mtlsModeFor([newer, older], ratings), 'PERMISSIVE');
    assert.equal(mtlsModeFor([pa('b', 'bookinfo', mode('DISABLE')), pa('a', 'bookinfo', mode('PERMISSIVE'))], ratings), 'PERMISSIVE');
  });

  void it('port-level modes override the workload mode; a port-level UNSET takes it', () => {
    const wl = pa('ratings', 'bookinfo', {
      selector: { matchLabels: { app: 'ratings' } },
      ...mode('PERMISSIVE'),
      portLevelMtls: { '9090': { mode: 'DISABLE' }, '9443': { mode: 'UNSET' }, '9080': { mode: 'STRICT' } },
    });
    const resolved = resolveMtlsModes([pa('default', ROOT, mode('STRICT')), wl], ratings);
    assert.equal(resolved.mode, 'PERMISSIVE');
    assert.equal(resolved.modeFor(9090), 'DISABLE');
    assert.equal(resolved.modeFor(9443), 'PERMISSIVE');
    assert.equal(resolved.modeFor(9080), 'STRICT');
    assert.equal(resolved.modeFor(1234), 'PERMISSIVE');
    assert.equal(resolved.modeFor(), 'PERMISSIVE');
    assert.equal(mtlsModeFor([wl], ratings, {}, 9090), 'DISABLE');
    assert.deepEqual(new Map(resolved.ports), new Map([
      [9090, 'DISABLE'],
      [9443, 'PERMISSIVE'],
      [9080, 'STRICT'],
    ]));
  });

  void it('a port-level UNSET under an inherited workload mode resolves through the scopes', () => {
    const wl = pa('ratings', 'bookinfo', { selector: { matchLabels: { app: 'ratings' } }, portLevelMtls: { '9443': {} } });
    assert.equal(mtlsModeFor([pa('ns', 'bookinfo', mode('DISABLE')), wl], ratings, {}, 9443), 'DISABLE');
  });
});
