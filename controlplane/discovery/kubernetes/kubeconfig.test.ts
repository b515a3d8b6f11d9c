// Where --discovery kubernetes finds its cluster: a kubeconfig file, the in-cluster service
// account, or a refusal that says what to set (never client-node's http://localhost:8080).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../common/errors.ts';
import { loadKubeConfig } from './kubeconfig.ts';

const KUBECONFIG = {
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [
    { name: 'a', cluster: { server: 'https://127.0.0.1:6443' } },
    { name: 'b', cluster: { server: 'https://127.0.0.2:6443' } },
  ],
  users: [{ name: 'u', user: { token: 'secret' } }],
  contexts: [
    { name: 'ctx-a', context: { cluster: 'a', user: 'u' } },
    { name: 'ctx-b', context: { cluster: 'b', user: 'u' } },
  ],
  'current-context': 'ctx-a',
};

void describe('loadKubeConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tm-kubeconfig-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(KUBECONFIG));

  void it('reads --kubeconfig, then KUBECONFIG, with the current or the given context', () => {
    assert.equal(loadKubeConfig({ path: file, env: {} }).kubeConfig.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    assert.equal(loadKubeConfig({ path: '', env: { KUBECONFIG: file } }).kubeConfig.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    assert.equal(loadKubeConfig({ path: file, context: 'ctx-b', env: {} }).kubeConfig.getCurrentCluster()?.server, 'https://127.0.0.2:6443');
    assert.throws(() => loadKubeConfig({ path: file, context: 'nope', env: {} }), /--kube-context "nope" is not in/);
  });

  void it('uses the in-cluster configuration inside a pod', () => {
    // client-node reads the service address from process.env itself.
    const saved = { host: process.env['KUBERNETES_SERVICE_HOST'], port: process.env['KUBERNETES_SERVICE_PORT'] };
    process.env['KUBERNETES_SERVICE_HOST'] = '10.96.0.1';
    process.env['KUBERNETES_SERVICE_PORT'] = '443';
    try {
      const { kubeConfig, from } = loadKubeConfig({ path: '', env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' } });
      assert.equal(kubeConfig.getCurrentCluster()?.server, 'https://10.96.0.1:443');
      assert.equal(kubeConfig.getCurrentCluster()?.caFile, '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
      assert.match(from, /in-cluster/);
    } finally {
      for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBERNETES_SERVICE_PORT', saved.port]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  void it('refuses a missing or unreadable file, with what to do', () => {
    assert.throws(() => loadKubeConfig({ path: join(dir, 'missing'), env: {} }), (e: unknown) => e instanceof ConfigError && /cannot read the kubeconfig/.test(e.message));
    writeFileSync(join(dir, 'empty.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] }));
    assert.throws(() => loadKubeConfig({ path: join(dir, 'empty.json'), env: {} }), /no current cluster/);
    rmSync(dir, { recursive: true, force: true });
  });
});
