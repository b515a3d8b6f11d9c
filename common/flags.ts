// Command-line flags with an environment-variable twin and a documented default.
// Precedence: --flag on the command line, then the environment variable, then the default.

import { parseArgs } from 'node:util';
import { ConfigError } from './errors.ts';

export type FlagKind = 'string' | 'int' | 'bool' | 'duration' | 'list';

export interface FlagSpec {
  /** Long flag name without dashes, kebab-case: `collector-endpoint`. */
  readonly name: string;
  readonly kind: FlagKind;
  /** Default as the user would type it; `undefined` means "required". */
  readonly default: string | undefined;
  readonly description: string;
  /** Environment twin; defaults to TRACEMESH_<NAME_IN_UPPER_SNAKE>. */
  readonly env?: string;
}

export type FlagValue = string | number | boolean | string[];
export type FlagValues<S extends readonly FlagSpec[]> = {
  [K in S[number] as K['name']]: K['kind'] extends 'int' | 'duration'
    ? number
    : K['kind'] extends 'bool'
      ? boolean
      : K['kind'] extends 'list'
        ? string[]
        : string;
};

export function envName(spec: FlagSpec): string {
  return spec.env ?? `TRACEMESH_${spec.name.replace(/-/g, '_').toUpperCase()}`;
}

/** Parses `500ms`, `2s`, `1m`, `24h` or a bare number of milliseconds into milliseconds. */
export function parseDuration(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) throw new ConfigError(`"${raw}" is not a duration; use a number with ms, s, m or h, e.g. 500ms or 2s`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1_000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * factor);
}

function convert(spec: FlagSpec, raw: string, source: string): FlagValue {
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) {
        throw new ConfigError(`${source} must be a whole number, got "${raw}"`);
      }
      return Number(raw);
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on', ''].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(`${source} must be true or false, got "${raw}"`);
    }
    case 'duration':
      try {
        return parseDuration(raw);
      } catch (err) {
        throw new ConfigError(`${source}: ${(err as Error).message}`);
      }
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
  }
}

/**
 * Parses argv and the environment against the specs. Unknown flags and bad values throw a
 * ConfigError that names the flag and its environment twin.
 */
export function parseFlags<const S extends readonly FlagSpec[]>(
  specs: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): FlagValues<S> & { _: string[] } {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const s of specs) options[s.name] = { type: s.kind === 'bool' ? 'boolean' : 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; run with --help to list the flags`);
  }
  const out: Record<string, FlagValue> = {};
  for (const s of specs) {
    const cli = parsed.values[s.name];
    const envValue = env[envName(s)];
    let value: FlagValue | undefined;
    if (cli !== undefined) {
      value = typeof cli === 'boolean' ? cli : convert(s, String(cli), `--${s.name}`);
    } else if (envValue !== undefined && envValue !== '') {
      value = convert(s, envValue, `${envName(s)}`);
    } else if (s.default !== undefined) {
      value = convert(s, s.default, `default of --${s.name}`);
    }
    if (value === undefined) {
      throw new ConfigError(`--${s.name} (or ${envName(s)}) is required: ${s.description}`);
    }
    out[s.name] = value;
  }
  return { ...(out as FlagValues<S>), _: parsed.positionals };
}

/** Help text listing each flag, its environment twin and default. */
export function helpText(usage: string, summary: string, specs: readonly FlagSpec[]): string {
  const lines = [`Usage: ${usage}`, '', summary, '', 'Flags (each also read from the environment variable shown):'];
  for (const s of specs) {
    const def = s.default === undefined ? 'required' : s.default === '' ? 'default: empty' : `default: ${s.default}`;
    lines.push(`  --${s.name}${s.kind === 'bool' ? '' : ' <' + s.kind + '>'}`);
    lines.push(`      ${s.description}`);
    lines.push(`      env ${envName(s)}; ${def}`);
  }
  lines.push('  --help', '      Print this help.');
  return lines.join('\n') + '\n';
}
