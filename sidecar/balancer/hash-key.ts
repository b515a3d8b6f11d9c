// What consistent-hashing policies hash (`--lb-hash-key`): a request header, a cookie, or the
// downstream peer's address (Envoy's hash_policy header / cookie / connection_properties).

import { ConfigError } from '../../common/errors.ts';
import type { PickRequest } from './load-balancer.ts';

export type HashKey = { readonly kind: 'header'; readonly name: string } | { readonly kind: 'cookie'; readonly name: string } | { readonly kind: 'source' };

/** Parses `header:<name>`, `cookie:<name>` or `source`; throws a ConfigError naming --lb-hash-key. */
export function parseHashKey(spec: string): HashKey {
  if (spec === 'source') return { kind: 'source' };
  const m = /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(spec);
  if (m === null) throw new ConfigError(`--lb-hash-key must be header:<name>, cookie:<name> or source, got "${spec}"`);
  return { kind: m[1] as 'header' | 'cookie', name: m[1] === 'header' ? (m[2] as string).toLowerCase() : (m[2] as string) };
}

/** The value to hash for a request, or undefined when it has none (the pick is then random). */
export function hashInput(key: HashKey, r: PickRequest): string | undefined {
  if (key.kind === 'source') return r.remoteAddress;
  if (key.kind === 'header') return r.header(key.name);
  const cookies = r.header('cookie');
  if (cookies === undefined) return undefined;
  for (const part of cookies.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === key.name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** 32-bit FNV-1a with murmur3's finalizer (good avalanche for short keys). `seed` varies the hash. */
export function hash32(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
