// Rule files: the default set parses; malformed files are refused with file, line and reason.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../common/errors.ts';
import { DEFAULT_RULES_FILE, loadRulesFile, parseRules } from './rules.ts';

function refusal(text: string): string {
  try {
    parseRules(text, 'rules.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('the rule file was accepted');
}

void describe('alert rule files', () => {
  void it('parses the default rules', () => {
    const set = loadRulesFile(DEFAULT_RULES_FILE);
    assert.deepEqual(
      set.rules.map((r) => [r.name, r.kind, r.windowSeconds, r.forSeconds]),
      [
        ['TracemeshNewFailingPath', 'new_failing_signature', 60, 0],
        ['TracemeshPathErrorRate', 'signature_error_rate', 120, 60],
        ['TracemeshRootCauseOnOneNode', 'root_cause_concentration', 300, 60],
        ['TracemeshRootCauseOnOnePod', 'root_cause_concentration', 300, 60],
      ],
    );
  });

  void it('reads every field of each kind, with defaults', () => {
    const set = parseRules(
      [
        'rules:',
        '  - name: HighErrorRate',
        '    kind: signature_error_rate',
        '    threshold: 0.05',
        '    for: 2m',
        '    labels: { team: payments }',
        '    annotations: { runbook: "https://runbooks.example/payments" }',
        '  - name: OneNode',
        '    kind: root_cause_concentration',
        '    by: node',
        '    threshold: 0.8',
        '',
      ].join('\n'),
      'rules.yaml',
    );
    assert.deepEqual(set.rules, [
      { name: 'HighErrorRate', kind: 'signature_error_rate', threshold: 0.05, minRequests: 10, forSeconds: 120, windowSeconds: 300, labels: { team: 'payments' }, annotations: { runbook: 'https://runbooks.example/payments' } },
      { name: 'OneNode', kind: 'root_cause_concentration', by: 'node', threshold: 0.8, minFailures: 5, forSeconds: 0, windowSeconds: 300, labels: {}, annotations: {} },
    ]);
  });

  void it('refuses malformed files with the file, the line and the reason', () => {
    assert.equal(refusal('rules:\n  - name: A\n    kind: signature_error_rate\n    threshold: 5\n'), 'rules.yaml:4: must be from 0 to 1 (rules.0.threshold)');
    assert.match(refusal('rules:\n  - name: A\n    kind: nonsense\n'), /^rules\.yaml:3: .*(rules\.0\.kind)/);
    assert.equal(refusal('rules:\n  - name: A\n    kind: new_failing_signature\n    for: soon\n'), 'rules.yaml:4: must be a duration such as 30s, 2m or 1h, got "soon" (rules.0.for)');
    assert.match(refusal('rules:\n  - name: A\n    kind: new_failing_signature\n    treshold: 1\n'), /^rules\.yaml:2: .*treshold/);
    assert.match(refusal('rules:\n  - name: A\n    kind: [unclosed\n'), /^rules\.yaml:\d: invalid YAML: /);
    assert.match(refusal('rules:\n  - name: A\n    kind: new_failing_signature\n  - name: A\n    kind: new_failing_signature\n'), /^rules\.yaml:4: rule name A is used twice/);
    assert.match(refusal('rules:\n  - name: "has space"\n    kind: new_failing_signature\n'), /^rules\.yaml:2: must be letters/);
    assert.match(refusal('rules:\n  - name: A\n    kind: root_cause_concentration\n    threshold: 0.5\n'), /^rules\.yaml:2: .*(rules\.0\.by)/);
    assert.match(refusal('alerts: []\n'), /^rules\.yaml:1: /);
    assert.match(refusal('rules:\n  - name: A\n    kind: new_failing_signature\n    window: 0s\n'), /^rules\.yaml:4: window must be at least 1s/);
  });
});
