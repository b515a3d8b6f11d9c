// Alert rules over trace outcomes, read from YAML. A malformed file is refused with the file,
// the line and the reason; README.md "Alert rules" documents the format. Three kinds:
// a signature's error rate over a threshold, a signature that starts failing, and failures
// concentrated on one pod or node.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../../common/errors.ts';
import { parseDuration } from '../../common/flags.ts';

export interface RuleCommon {
  readonly name: string;
  /** Seconds an alert must stay active before it fires; 0 fires at once. */
  readonly forSeconds: number;
  /** Outcomes counted: the trace starts of the last `windowSeconds`. */
  readonly windowSeconds: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface SignatureErrorRateRule extends RuleCommon {
  readonly kind: 'signature_error_rate';
  /** Fires above this failures / requests (0 to 1). */
  readonly threshold: number;
  readonly minRequests: number;
}

export interface NewFailingSignatureRule extends RuleCommon {
  readonly kind: 'new_failing_signature';
  /** A signature failing in the window with no failure in this long before it. */
  readonly baselineSeconds: number;
  readonly minFailures: number;
}

export interface RootCauseConcentrationRule extends RuleCommon {
  readonly kind: 'root_cause_concentration';
  readonly by: 'pod' | 'node';
  /** Fires when one pod or node is the root cause of more than this share of all failures. */
  readonly threshold: number;
  readonly minFailures: number;
}

export type OutcomeRule = SignatureErrorRateRule | NewFailingSignatureRule | RootCauseConcentrationRule;

export interface RuleSet {
  /** Where it came from, for logs and the generator URL. */
  readonly source: string;
  readonly rules: readonly OutcomeRule[];
}

export const MAX_RULES = 200;
const MAX_FILE_BYTES = 1024 * 1024;

const duration = z
  .string()
  .or(z.number())
  .transform((v, ctx) => {
    try {
      const ms = typeof v === 'number' ? v * 1000 : parseDuration(v);
      return ms / 1000;
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be a duration such as 30s, 2m or 1h, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
  });
const labelMap = z.record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'label names are letters, digits and _'), z.string().max(1024)).default({});
const common = {
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be letters, digits and _ (it becomes the alertname label)'),
  for: duration.default(0),
  window: duration.default(300),
  labels: labelMap,
  annotations: labelMap,
};
const share = z.number().min(0, 'must be from 0 to 1').max(1, 'must be from 0 to 1');

const ruleSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('signature_error_rate'), ...common, threshold: share, minRequests: z.number().int().min(1).default(10) }),
  z.strictObject({ kind: z.literal('new_failing_signature'), ...common, baseline: duration.default(3600), minFailures: z.number().int().min(1).default(1) }),
  z.strictObject({ kind: z.literal('root_cause_concentration'), ...common, by: z.enum(['pod', 'node']), threshold: share, minFailures: z.number().int().min(1).default(5) }),
]);
const fileSchema = z.strictObject({ rules: z.array(ruleSchema).max(MAX_RULES, `at most ${MAX_RULES} rules`) });

/** The line (1-based) of the node at `path` in the document, or of its nearest existing parent. */
function lineOf(doc: Document, counter: LineCounter, path: readonly PropertyKey[]): number {
  let node: unknown = doc.contents;
  let best = 1;
  const at = (n: unknown): void => {
    const range = (n as { range?: [number, number, number] } | null)?.range;
    if (range) best = counter.linePos(range[0]).line;
  };
  at(node);
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      if (!pair) break;
      at(pair.key);
      node = pair.value;
      if (node) at(node);
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
      if (!node) break;
      at(node);
    } else break;
  }
  return best;
}

/** Parses and validates a rule file's text. Throws ConfigError `<file>:<line>: <reason>`. */
export function parseRules(text: string, file: string): RuleSet {
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw new ConfigError(`${file}:1: the rule file is larger than ${MAX_FILE_BYTES} bytes`);
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const line = yamlError.linePos?.[0]?.line ?? counter.linePos(yamlError.pos[0]).line;
    throw new ConfigError(`${file}:${line}: invalid YAML: ${yamlError.message.split('\n')[0]}`);
  }
  const parsed = fileSchema.safeParse(doc.toJS({ maxAliasCount: 100 }));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? ` (${issue.path.map(String).join('.')})` : '';
    throw new ConfigError(`${file}:${lineOf(doc, counter, issue.path)}: ${issue.message}${where}`);
  }
  const names = new Set<string>();
  const rules: OutcomeRule[] = parsed.data.rules.map((r, i) => {
    if (names.has(r.name)) throw new ConfigError(`${file}:${lineOf(doc, counter, ['rules', i, 'name'])}: rule name ${r.name} is used twice`);
    names.add(r.name);
    const base = { name: r.name, forSeconds: r.for, windowSeconds: r.window, labels: r.labels, annotations: r.annotations };
    if (r.window < 1) throw new ConfigError(`${file}:${lineOf(doc, counter, ['rules', i, 'window'])}: window must be at least 1s`);
    switch (r.kind) {
      case 'signature_error_rate':
        return { ...base, kind: r.kind, threshold: r.threshold, minRequests: r.minRequests };
      case 'new_failing_signature':
        return { ...base, kind: r.kind, baselineSeconds: r.baseline, minFailures: r.minFailures };
      case 'root_cause_concentration':
        return { ...base, kind: r.kind, by: r.by, threshold: r.threshold, minFailures: r.minFailures };
    }
  });
  return { source: file, rules };
}

/** The rule file tracemesh uses when none is given (`default-rules.yaml` beside this module). */
export const DEFAULT_RULES_FILE = fileURLToPath(new URL('./default-rules.yaml', import.meta.url));

export function loadRulesFile(file: string): RuleSet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the rule file: ${(err as Error).message}`);
  }
  return parseRules(text, file);
}
