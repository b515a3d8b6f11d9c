import assert from 'node:assert/strict';
import { test } from 'node:test';
import { editLines, editObject, type HeaderLines } from './headers.ts';

const mods = [
  { set: [{ name: 'X-Set', value: 'new' }], add: [{ name: 'X-Add', value: 'two' }], remove: ['X-Gone'] },
  { set: [{ name: 'x-backend', value: 'v1' }] },
];

void test('header lines: set replaces every line of the name (any case), add appends a line, remove drops them; edits apply in order', () => {
  const lines: HeaderLines = [
    ['Host', 'echo'],
    ['x-set', 'old-1'],
    ['X-SET', 'old-2'],
    ['X-Add', 'one'],
    ['x-gone', 'bye'],
  ];
  editLines(lines, mods);
  assert.deepEqual(lines, [
    ['Host', 'echo'],
    ['X-Add', 'one'],
    ['X-Set', 'new'],
    ['X-Add', 'two'],
    ['x-backend', 'v1'],
  ]);
});

void test('header objects: lower-case names; add joins onto an existing value or array', () => {
  const h: Record<string, string | string[] | number | undefined> = { 'x-set': 'old', 'x-add': 'one', 'x-gone': 'bye', 'set-cookie': ['a=1'] };
  editObject(h, [...mods, { add: [{ name: 'Set-Cookie', value: 'b=2' }] }]);
  assert.deepEqual(h, { 'x-set': 'new', 'x-add': 'one,two', 'set-cookie': ['a=1', 'b=2'], 'x-backend': 'v1' });
});
