import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileGlobMatcher,
  compileIpMatcher,
  compilePathMatcher,
  compilePathTemplate,
  compilePortMatcher,
  compileStringMatcher,
  parseIpBlock,
  pathTemplateProblem,
} from './matchers.ts';

void describe('compileStringMatcher', () => {
  void it('implements Istio exact / prefix / suffix / presence matching over a list', () => {
    const m = compileStringMatcher(['exact', 'pre*', '*suf']);
    assert.deepEqual(['exact', 'prefix', 'pre', 'the-suf', 'suf', 'exactly', 'xpre', ''].map(m), [true, true, true, true, true, false, false, false]);
    const any = compileStringMatcher(['*']);
    assert.equal(any('x'), true);
    assert.equal(any(''), false);
    assert.equal(compileStringMatcher([])('x'), false);
  });

  void it('treats a * in the middle as a literal character', () => {
    const m = compileStringMatcher(['a*b']);
    assert.equal(m('a*b'), true);
    assert.equal(m('axb'), false);
  });

  void it('folds patterns with the given function', () => {
    const m = compileStringMatcher(['Example.COM', '*.Svc'], (s) => s.toLowerCase());
    assert.equal(m('example.com'), true);
    assert.equal(m('b.svc'), true);
  });
});

void describe('compileGlobMatcher', () => {
  void it('accepts * anywhere, like Istio\'s namespace regex', () => {
    const m = compileGlobMatcher(['team-*-prod', 'dev*', '*-test', 'exact']);
    assert.deepEqual(['team-a-prod', 'team--prod', 'team-a-staging', 'dev1', 'x-test', 'exact', 'exactly'].map(m), [true, true, false, true, true, true, false]);
    assert.equal(compileGlobMatcher(['**'])('anything'), true);
    assert.equal(compileGlobMatcher(['a.b'])('axb'), false);
  });
});

void describe('path templates', () => {
  void it('validates like Istio', () => {
    assert.equal(pathTemplateProblem('/a/{*}/b/{**}'), undefined);
    assert.equal(pathTemplateProblem('/plain/*'), undefined);
    assert.match(pathTemplateProblem('/a/{**}/b/{*}') ?? '', /last operator/);
    assert.match(pathTemplateProblem('/a/{x}') ?? '', /outside a whole-segment/);
    assert.match(pathTemplateProblem('/a{*}') ?? '', /outside a whole-segment/);
    assert.match(pathTemplateProblem('/a/{*}/b*') ?? '', /not allowed/);
  });

  void it('{*} is one non-empty segment, {**} any rest', () => {
    const one = compilePathTemplate('/v1/{*}/items');
    assert.equal(one.test('/v1/abc/items'), true);
    assert.equal(one.test('/v1//items'), false);
    assert.equal(one.test('/v1/a/b/items'), false);
    const rest = compilePathTemplate('/v1/{**}');
    assert.equal(rest.test('/v1/a/b/c'), true);
    assert.equal(rest.test('/v1/'), true);
    assert.equal(rest.test('/v1'), false);
    // Literal parts are escaped, not regex syntax.
    assert.equal(compilePathTemplate('/a.b/{*}').test('/axb/c'), false);
  });

  void it('mixes templates and string patterns', () => {
    const m = compilePathMatcher(['/exact', '/p/*', '/t/{*}']);
    assert.deepEqual(['/exact', '/p/x/y', '/t/x', '/t/x/y', '/other'].map(m), [true, true, true, false, false]);
  });
});

void describe('IP blocks and ports', () => {
  void it('parses addresses and CIDRs, rejecting bad ones', () => {
    assert.deepEqual(parseIpBlock('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseIpBlock('2001:db8::1'), { address: '2001:db8::1', prefix: 128, family: 'ipv6' });
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/x', 'host', '10.0.0', '10.0.0.0/08a']) assert.equal(parseIpBlock(bad), undefined, bad);
  });

  void it('matches IPv4, IPv6 and IPv4-mapped peers', () => {
    const m = compileIpMatcher(['10.0.0.0/8', '192.168.1.1', 'fd00::/8']);
    assert.equal(m('10.9.9.9', 'ipv4'), true);
    assert.equal(m('192.168.1.1', 'ipv4'), true);
    assert.equal(m('192.168.1.2', 'ipv4'), false);
    assert.equal(m('::ffff:10.1.1.1', 'ipv6'), true);
    assert.equal(m('fd12::1', 'ipv6'), true);
    assert.equal(m('10.0.0.1', undefined), false);
  });

  void it('matches ports exactly', () => {
    assert.equal(compilePortMatcher(['80'])(80), true);
    assert.equal(compilePortMatcher(['80', '443'])(443), true);
    assert.equal(compilePortMatcher(['80', '443'])(8080), false);
  });
});
