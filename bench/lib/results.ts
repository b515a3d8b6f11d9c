// The shape of bench/results/<suite>.json. Every figure sits beside the parameters and the
// machine it was measured with; a suite that could not run says why instead of inventing one.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineInfo } from './machine.ts';

export type SuiteName = 'dataplane' | 'ingest' | 'query' | 'outcomes';
export const SUITES: readonly SuiteName[] = ['dataplane', 'ingest', 'query', 'outcomes'];

export type SuiteStatus = 'ok' | 'partial' | 'skipped' | 'failed';

export interface SuiteResult<F = Record<string, unknown>> {
  readonly suite: SuiteName;
  status: SuiteStatus;
  /** Why the suite (or part of it) did not run: "collector/main.ts not found", … */
  skipped: string[];
  readonly startedAt: string;
  finishedAt?: string;
  readonly machine: MachineInfo;
  readonly parameters: Record<string, unknown>;
  figures: F;
  notes: string[];
  /** Where the processes' logs of this run are kept. */
  logDir?: string;
}

export function writeResult(outDir: string, result: SuiteResult<unknown>): string {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, `${result.suite}.json`);
  writeFileSync(path, JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  return path;
}

/** A measurement that did not happen, with the reason; stands where a number would. */
export interface NotApplicable {
  readonly na: string;
}
export function na(reason: string): NotApplicable {
  return { na: reason };
}
export function isNa(v: unknown): v is NotApplicable {
  return typeof v === 'object' && v !== null && 'na' in v;
}
