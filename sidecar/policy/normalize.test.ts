import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normalizePath, type PathNormalization } from './normalize.ts';

void describe('normalizePath', () => {
  // Expected results from Istio's "Authorization Policy Normalization" reference.
  const cases: Array<[string, PathNormalization, string | undefined]> = [
    ['/some%2fdata/%61%62%63', 'DECODE_AND_MERGE_SLASHES', '/some/data/abc'],
    ['/some%2fdata/%61%62%63', 'BASE', '/some%2Fdata/abc'],
    ['/some\\data', 'BASE', '/some/data'],
    ['/some//data///abc', 'MERGE_SLASHES', '/some/data/abc'],
    ['/some//data///abc', 'BASE', '/some//data///abc'],
    ['/public/./data/abc/../xyz', 'BASE', '/public/data/xyz'],
    ['/foo?v=1', 'BASE', '/foo'],
    ['/foo?v=1', 'NONE', '/foo'],
    ['/foo#frag', 'MERGE_SLASHES', '/foo'],
    ['/a/../../../b', 'BASE', '/b'],
    ['/a/b/..', 'BASE', '/a/'],
    ['/a/.', 'BASE', '/a/'],
    ['/..', 'BASE', '/'],
    ['/%2e%2e/admin', 'BASE', '/admin'],
    ['/%2E/admin', 'BASE', '/admin'],
    ['/%7e%2d%5f%30', 'BASE', '/~-_0'],
    ['/a%2fb%5cc', 'DECODE_AND_MERGE_SLASHES', '/a/b/c'],
    ['/a%20b%3f', 'BASE', '/a%20b%3F'],
    ['/%252e', 'BASE', '/%252e'],
    ['/%2e%252e', 'BASE', '/.%252e'],
    ['/bad%zzescape%', 'BASE', '/bad%zzescape%'],
    ['/a%00b', 'BASE', undefined],
    ['/a%00b', 'NONE', undefined],
    ['/a/..//b', 'NONE', '/a/..//b'],
    ['*', 'MERGE_SLASHES', '*'],
    ['/plain/path', 'MERGE_SLASHES', '/plain/path'],
    ['', 'MERGE_SLASHES', ''],
  ];
  for (const [input, mode, expected] of cases) {
    void it(`${mode}: ${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
      assert.equal(normalizePath(input, mode), expected);
    });
  }

  void it('defaults to MERGE_SLASHES', () => {
    assert.equal(normalizePath('//a//b/../c'), '/a/c');
  });

  void it('returns the input itself when there is nothing to do', () => {
    const p = '/api/v1/items/42';
    assert.equal(normalizePath(p), p);
  });

  const pathChars = fc.constantFrom('/', '/', 'a', 'B', '.', '..', '%2e', '%2E', '%2f', '%5C', '%41', '%25', '\\', '-', '?', 'x=1');
  const arbitraryPath = fc.array(pathChars, { maxLength: 12 }).map((parts) => '/' + parts.join(''));
  const modes = fc.constantFrom<PathNormalization>('BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES');

  void it('is idempotent, and its output has no dot segments, backslashes or query', () => {
    fc.assert(
      fc.property(arbitraryPath, modes, (path, mode) => {
        const once = normalizePath(path, mode);
        if (once === undefined) return;
        assert.equal(normalizePath(once, mode), once, `${path} → ${once}`);
        assert.ok(!/(^|\/)\.\.?(\/|$)/.test(once), `dot segment left in ${once}`);
        assert.ok(!once.includes('\\') && !once.includes('?'), once);
        assert.ok(once.startsWith('/'), once);
        if (mode !== 'BASE') assert.ok(!once.includes('//'), once);
      }),
      { numRuns: 2000 },
    );
  });
});
