// Label keys named after Object.prototype's members behave like any other string in policy
// documents: a selector `matchLabels: {__proto__: x}` is kept (zod's record would drop it and
// the policy would select every workload), and selection compares it like any label.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hostileKey } from '../testing/prototype-keys.ts';
import { parsePolicyYaml } from './load.ts';
import { selectorMatches } from './selection.ts';

const labelValue = fc.stringMatching(/^[a-z0-9]{1,10}$/);

void describe('prototype-named label keys in policies', () => {
  void it('matchLabels keeps them, and a selector matches only workloads that carry them', () => {
    fc.assert(
      fc.property(hostileKey(/^[a-zA-Z_][a-zA-Z0-9_.-]{0,20}$/), labelValue, (key, v) => {
        const yaml = `apiVersion: security.tracemesh.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  selector:\n    matchLabels:\n      ${JSON.stringify(key)}: ${JSON.stringify(v)}\n  action: DENY\n  rules:\n  - {}\n`;
        const [policy] = parsePolicyYaml(yaml, 'p.yaml').authorizationPolicies;
        const selector = policy!.spec.selector;
        assert.deepEqual(Object.entries(selector?.matchLabels ?? {}), [[key, v]]);
        const withLabel = Object.create(null) as Record<string, string>;
        withLabel[key] = v;
        withLabel['app'] = 'x';
        assert.equal(selectorMatches(selector, withLabel), true);
        assert.equal(selectorMatches(selector, { app: 'x' }), false, 'a workload without the label is not selected');
      }),
    );
  });
});
