import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';
import { createLogger, silentLogger } from '../logger.ts';
import { createAuthorizer, mtlsModeFor, type RequestFacts } from '../../sidecar/policy/authorize.ts';
import { listPolicyFiles, loadPolicies, parsePolicyYaml, PolicyWatcher, type PolicySet } from './load.ts';

const TESTDATA = join(import.meta.dirname, 'testdata');

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tracemesh-policy-'));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Polls until `check` returns a value, failing after a deadline. */
async function waitFor<T>(check: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function capture(level: 'debug' | 'warn' = 'debug') {
  const lines: Array<{ level: string; msg: string; [k: string]: unknown }> = [];
  return { lines, logger: createLogger({}, level, (l) => lines.push(JSON.parse(l) as { level: string; msg: string })) };
}

const policyDoc = (name: string, spec = '{}', namespace = 'default') =>
  `apiVersion: security.tracemesh.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec: ${spec}\n`;
const names = (set: PolicySet) => set.authorizationPolicies.map((p) => `${p.metadata.namespace}/${p.metadata.name}`);

void describe('parsing Istio-style YAML', () => {
  void it('loads a multi-document file of Istio samples and skips other kinds with a debug note', async () => {
    const { lines, logger } = capture();
    const set = await loadPolicies(join(TESTDATA, 'istio-samples.yaml'), { logger });
    assert.deepEqual(names(set), [
      'bookinfo/allow-nothing',
      'bookinfo/productpage-viewer',
      'bookinfo/reviews-viewer',
      'bookinfo/ratings-deny-dev',
      'bookinfo/ratings-viewer',
      'tracemesh-system/deny-plaintext',
      'tracemesh-system/audit-admin',
    ]);
    assert.deepEqual(
      set.peerAuthentications.map((p) => p.metadata.name),
      ['default', 'legacy', 'ratings-metrics'],
    );
    const skipped = lines.filter((l) => l.msg === 'ignoring a resource that is not a policy');
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0]?.['kind'], 'Service');
    assert.match(String(skipped[0]?.['where']), /istio-samples\.yaml \(document 6\)$/);
  });

  void it('enforces the samples the way Istio documents them', async () => {
    const set = await loadPolicies(join(TESTDATA, 'istio-samples.yaml'));
    const decide = (labels: Record<string, string>, over: Partial<RequestFacts>) =>
      createAuthorizer(set.authorizationPolicies, { namespace: 'bookinfo', labels }).decide({
        sourcePrincipal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage',
        sourceIp: '10.20.1.1',
        method: 'GET',
        path: '/',
        host: 'x',
        port: 9080,
        headers: {},
        ...over,
      });
    const productpage = { app: 'productpage' };
    assert.equal(decide(productpage, {}).policy, 'bookinfo/productpage-viewer');
    assert.equal(decide(productpage, { method: 'POST' }).allowed, false); // allow-nothing + GET-only viewer
    assert.equal(decide(productpage, { sourcePrincipal: undefined }).policy, 'tracemesh-system/deny-plaintext');
    assert.equal(decide(productpage, { sourcePrincipal: undefined, path: '/healthz' }).allowed, true);
    assert.deepEqual(decide(productpage, { path: '/admin/x' }).audit, { policy: 'tracemesh-system/audit-admin', ruleIndex: 0 });

    const reviews = { app: 'reviews' };
    assert.equal(decide(reviews, {}).allowed, true);
    assert.equal(decide(reviews, { sourcePrincipal: 'spiffe://cluster.local/ns/bookinfo/sa/other' }).allowed, false);

    const ratings = { app: 'ratings' };
    const v1 = { headers: { version: 'v1' } };
    assert.equal(decide(ratings, v1).policy, 'bookinfo/ratings-viewer');
    assert.equal(decide(ratings, {}).allowed, false); // no version header
    assert.equal(decide(ratings, { ...v1, path: '/internal/x' }).allowed, false);
    assert.equal(decide(ratings, { ...v1, port: 9090 }).allowed, false);
    assert.equal(decide(ratings, { ...v1, sourcePrincipal: 'spiffe://cluster.local/ns/dev/sa/x', sourceIp: '10.20.3.3' }).allowed, true); // via ipBlocks
    assert.equal(decide(ratings, { ...v1, sourcePrincipal: 'spiffe://cluster.local/ns/dev/sa/x', method: 'POST', path: '/ratings/1' }).policy, 'bookinfo/ratings-deny-dev');
    assert.equal(decide(ratings, { ...v1, method: 'POST', path: '/ratings/1' }).allowed, true); // same namespace
    assert.equal(decide(ratings, { headers: { version: 'v1', 'x-debug': '' } }).reason, 'denied by policy bookinfo/ratings-deny-dev (rule 1): request.headers[x-debug] *');

    assert.equal(mtlsModeFor(set.peerAuthentications, { namespace: 'bookinfo', labels: ratings }), 'STRICT');
    assert.equal(mtlsModeFor(set.peerAuthentications, { namespace: 'bookinfo', labels: ratings }, {}, 9090), 'DISABLE');
    assert.equal(mtlsModeFor(set.peerAuthentications, { namespace: 'legacy', labels: {} }), 'PERMISSIVE');
    assert.equal(mtlsModeFor(set.peerAuthentications, { namespace: 'bookinfo', labels: reviews }, { defaultMode: 'PERMISSIVE' }), 'STRICT');
  });

  void it('loads `kubectl get -o yaml` List output and names items in errors', async () => {
    const set = await loadPolicies(join(TESTDATA, 'kubectl-list.yaml'));
    assert.deepEqual(names(set), ['shop/frontend-to-checkout', 'shop/deny-admin-delete']);
    assert.equal(set.authorizationPolicies[0]?.metadata.creationTimestamp, '2025-01-02T03:04:05Z');
    const bad = 'apiVersion: v1\nkind: List\nitems:\n- ' + policyDoc('ok').replace(/\n/g, '\n  ') + '\n- ' + policyDoc('bad', '{action: NOPE}').replace(/\n/g, '\n  ');
    assert.throws(() => parsePolicyYaml(bad, 'list.yaml'), /list\.yaml \(document 1\): items\[1\]\.spec\.action: must be ALLOW, DENY or AUDIT/);
    assert.throws(() => parsePolicyYaml('apiVersion: v1\nkind: List\nitems: {}\n', 'l.yaml'), /l\.yaml \(document 1\): items: expected array/);
  });

  void it('skips empty documents and comments', () => {
    assert.deepEqual(parsePolicyYaml('', 'e.yaml'), { authorizationPolicies: [], peerAuthentications: [] });
    assert.deepEqual(names(parsePolicyYaml(`# only a comment\n---\n${policyDoc('a')}---\n---\n`, 'e.yaml')), ['default/a']);
  });

  void it('reports YAML syntax errors with the document number', () => {
    assert.throws(() => parsePolicyYaml(`${policyDoc('a')}---\nkind: [unclosed\n`, 'bad.yaml'), /^ConfigError: bad\.yaml \(document 2\): invalid YAML: .* at line 9, column 1$/);
    assert.throws(() => parsePolicyYaml('a: 1\na: 2\n', 'dup.yaml'), /dup\.yaml \(document 1\): invalid YAML: Map keys must be unique/);
  });

  void it('rejects documents that are not Kubernetes objects', () => {
    assert.throws(() => parsePolicyYaml('- just\n- a list\n', 'x.yaml'), /x\.yaml \(document 1\): expected a Kubernetes object with apiVersion and kind/);
    assert.throws(() => parsePolicyYaml('kind: AuthorizationPolicy\n', 'x.yaml'), /expected a Kubernetes object with apiVersion and kind/);
  });

  void it('rejects the same policy twice, naming both places', () => {
    assert.throws(() => parsePolicyYaml(`${policyDoc('a')}---\n${policyDoc('a')}`, 'twice.yaml'), /twice\.yaml \(document 2\): AuthorizationPolicy default\/a is already defined in twice\.yaml \(document 1\)/);
    // The same name in another namespace, or as another kind, is fine.
    assert.equal(parsePolicyYaml(`${policyDoc('a')}---\n${policyDoc('a', '{}', 'other')}`, 'ok.yaml').authorizationPolicies.length, 2);
  });

  void it('warns about unsupported kinds of our API groups and ignores other groups quietly', () => {
    const { lines, logger } = capture();
    const yaml = [
      'apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\nspec: {}\n',
      'apiVersion: example.com/v1\nkind: AuthorizationPolicy\nmetadata: {name: theirs}\nspec: {action: WHATEVER}\n',
    ].join('---\n');
    const set = parsePolicyYaml(yaml, 'mixed.yaml', { logger });
    assert.equal(set.authorizationPolicies.length, 0);
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg]),
      [
        ['warn', 'RequestAuthentication is not supported by tracemesh; ignoring it'],
        ['debug', 'ignoring a resource that is not a policy'],
      ],
    );
  });
});

void describe('loading files and directories', () => {
  void it('reads *.yaml and *.yml in name order, skipping dot-files, other files and sub-directories', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'b.yml'), policyDoc('b'));
    await writeFile(join(dir, 'a.yaml'), policyDoc('a'));
    await writeFile(join(dir, 'notes.txt'), 'not yaml');
    await writeFile(join(dir, '.hidden.yaml'), policyDoc('hidden'));
    await mkdir(join(dir, 'sub.yaml'));
    await writeFile(join(dir, 'sub.yaml', 'c.yaml'), policyDoc('c'));
    const elsewhere = await tempDir();
    await writeFile(join(elsewhere, 'linked-target.yaml'), policyDoc('linked'));
    await symlink(join(elsewhere, 'linked-target.yaml'), join(dir, 'l.yaml'));
    assert.deepEqual(await listPolicyFiles(dir), [join(dir, 'a.yaml'), join(dir, 'b.yml'), join(dir, 'l.yaml')]);
    assert.deepEqual(names(await loadPolicies(dir)), ['default/a', 'default/b', 'default/linked']);
    // A directory plus a file in it: the file is read once.
    assert.deepEqual(names(await loadPolicies([dir, join(dir, 'a.yaml')])), ['default/a', 'default/b', 'default/linked']);
  });

  void it('names the file inside the directory in errors, and duplicates across files', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a.yaml'), policyDoc('a'));
    await writeFile(join(dir, 'b.yaml'), `${policyDoc('b')}---\n${policyDoc('c', '{action: DENY}')}`);
    await assert.rejects(loadPolicies(dir), new RegExp(`${join(dir, 'b.yaml').replace(/[.]/g, '\\.')} \\(document 2\\): spec\\.rules: a DENY policy without rules`));
    await writeFile(join(dir, 'b.yaml'), policyDoc('a'));
    await assert.rejects(loadPolicies(dir), /b\.yaml \(document 1\): AuthorizationPolicy default\/a is already defined in .*a\.yaml \(document 1\)/);
  });

  void it('fails with a ConfigError for a path that does not exist', async () => {
    const dir = await tempDir();
    await assert.rejects(loadPolicies([join(dir, 'missing.yaml')]), (e: unknown) => e instanceof ConfigError && /cannot read policy path .*missing\.yaml/.test(e.message));
  });

  void it('an empty directory or no paths is an empty set', async () => {
    assert.deepEqual(await loadPolicies(await tempDir()), { authorizationPolicies: [], peerAuthentications: [] });
    assert.deepEqual(await loadPolicies([]), { authorizationPolicies: [], peerAuthentications: [] });
  });
});

void describe('PolicyWatcher', () => {
  void it('publishes valid edits, keeps the last good set on an invalid one, reports it once', async () => {
    const dir = await tempDir();
    const file = join(dir, 'policies.yaml');
    await writeFile(file, policyDoc('one'));
    const sets: PolicySet[] = [];
    const errors: ConfigError[] = [];
    const w = await PolicyWatcher.open(file, { logger: silentLogger, debounceMs: 10, onChange: (s) => sets.push(s), onError: (e) => errors.push(e) });
    try {
      assert.deepEqual(names(w.current()), ['default/one']);

      await writeFile(file, `${policyDoc('one')}---\n${policyDoc('two')}`);
      await waitFor(() => (sets.length === 1 ? true : undefined), 'the edit to be published');
      assert.deepEqual(names(w.current()), ['default/one', 'default/two']);

      await writeFile(file, policyDoc('broken', '{action: CUSTOM}'));
      const err = await waitFor(() => errors[0], 'the invalid edit to be reported');
      assert.match(err.message, /policies\.yaml \(document 1\): spec\.action: not supported/);
      assert.deepEqual(names(w.current()), ['default/one', 'default/two']);
      // The same bad content again is not reported twice.
      await w.reload();
      assert.equal(errors.length, 1);

      // Saved by rename, as editors do.
      await writeFile(join(dir, '.policies.yaml.swp'), policyDoc('three'));
      await rename(join(dir, '.policies.yaml.swp'), file);
      await waitFor(() => (sets.length === 2 ? true : undefined), 'the rename-save to be published');
      assert.deepEqual(names(w.current()), ['default/three']);
      assert.equal(sets[1], w.current());
    } finally {
      w.close();
      w.close();
    }
  });

  void it('follows files appearing in and disappearing from a watched directory', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a.yaml'), policyDoc('a'));
    const w = await PolicyWatcher.open([dir], { logger: silentLogger, debounceMs: 10 });
    try {
      const seen: string[][] = [];
      w.subscribe((s) => seen.push(names(s)));
      await writeFile(join(dir, 'b.yaml'), policyDoc('b'));
      await waitFor(() => (names(w.current()).length === 2 ? true : undefined), 'the new file to be read');
      await unlink(join(dir, 'a.yaml'));
      await waitFor(() => (names(w.current()).length === 1 ? true : undefined), 'the removed file to be dropped');
      assert.deepEqual(names(w.current()), ['default/b']);
      assert.deepEqual(seen.at(-1), ['default/b']);
      // Other files in the directory do not trigger anything.
      const before = w.current();
      await writeFile(join(dir, 'README.txt'), 'hello');
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(w.current(), before);
    } finally {
      w.close();
    }
  });

  void it('keeps the set when a watched file disappears, and picks it up when it comes back', async () => {
    const dir = await tempDir();
    const file = join(dir, 'p.yaml');
    await writeFile(file, policyDoc('a'));
    const errors: string[] = [];
    const w = await PolicyWatcher.open(file, { logger: silentLogger, debounceMs: 10, onError: (e) => errors.push(e.message) });
    try {
      await unlink(file);
      await waitFor(() => errors.find((m) => /cannot read policy path/.test(m)), 'the read failure to be reported');
      assert.deepEqual(names(w.current()), ['default/a']);
      await writeFile(file, policyDoc('b'));
      await waitFor(() => (names(w.current())[0] === 'default/b' ? true : undefined), 'the file to come back');
    } finally {
      w.close();
    }
  });

  void it('refuses to start from invalid policies', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'p.yaml'), policyDoc('p', '{rules: [{from: []}]}'));
    await assert.rejects(PolicyWatcher.open(dir, { logger: silentLogger }), (e: unknown) => e instanceof ConfigError && /p\.yaml \(document 1\): spec\.rules\[0\]\.from: must not be empty/.test(e.message));
  });

  void it('survives a throwing listener, and stops publishing after close', async () => {
    const dir = await tempDir();
    const file = join(dir, 'p.yaml');
    await writeFile(file, policyDoc('a'));
    const { lines, logger } = capture('warn');
    const w = await PolicyWatcher.open(file, { logger, debounceMs: 10 });
    const got: string[][] = [];
    w.subscribe(() => {
      throw new Error('listener bug');
    });
    const unsubscribe = w.subscribe((s) => got.push(names(s)));
    await writeFile(file, policyDoc('b'));
    await waitFor(() => got[0], 'the second listener to be called');
    assert.ok(lines.some((l) => l.msg === 'policy files listener failed'));
    unsubscribe();
    await writeFile(file, policyDoc('c'));
    await waitFor(() => (names(w.current())[0] === 'default/c' ? true : undefined), 'the next edit');
    assert.equal(got.length, 1);
    w.close();
    await writeFile(file, policyDoc('d'));
    await new Promise((r) => setTimeout(r, 60));
    await w.reload();
    assert.deepEqual(names(w.current()), ['default/c']);
  });
});
