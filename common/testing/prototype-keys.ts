// Keys that trip code which uses a plain object as a map: the names of Object.prototype's
// members (and a few that look like them). Property tests draw keys from these and from
// arbitrary strings, and check that every parser treats them like any other string.

import fc from 'fast-check';

export const PROTOTYPE_KEYS: readonly string[] = [
  '__proto__',
  'constructor',
  'toString',
  'toLocaleString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
  'prototype',
  'length',
];

/** A key: one of PROTOTYPE_KEYS most of the time, else any short string matching `pattern`. */
export function hostileKey(pattern: RegExp = /^[\x21-\x7e]{1,40}$/): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...PROTOTYPE_KEYS) },
    { weight: 1, arbitrary: fc.stringMatching(pattern) },
  );
}
