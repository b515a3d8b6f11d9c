// `tracemesh path <trace-id>`: asks the query API for a trace's path and prints it as a tree,
// marking the hop where the failure began.

import { ConfigError, TracemeshError } from '../common/errors.ts';
import { helpText, parseFlags, type FlagSpec } from '../common/flags.ts';
import type { PathHop, TracePath } from '../query-api/path/model.ts';

export const PATH_FLAGS = [
  { name: 'query-url', kind: 'string', default: 'http://127.0.0.1:16686', description: 'Base URL of the tracemesh query API' },
  { name: 'json', env: 'TRACEMESH_PATH_JSON', kind: 'bool', default: 'false', description: 'Print the raw JSON response instead of the tree' },
] as const satisfies readonly FlagSpec[];

function where(h: { service: string; pod: string | null; node: string | null }): string {
  return `${h.service}${h.pod ? ` ${h.pod}` : ''}${h.node ? ` @${h.node}` : ''}`;
}

/** Renders the hop tree, one line per hop, with the root cause marked. */
export function renderPath(path: TracePath): string {
  const lines: string[] = [`trace ${path.traceId}  ${path.status.toUpperCase()}  ${path.durationMs.toFixed(1)} ms  ${path.hopCount} hops`];
  const rootCauseHop = path.rootCause?.hopId;
  const walk = (hop: PathHop, prefix: string, last: boolean, top: boolean): void => {
    const branch = top ? '' : last ? '└─ ' : '├─ ';
    const status = hop.meshErrorCode ?? (hop.httpStatus !== null ? String(hop.httpStatus) : hop.status);
    const marks = [hop.unreached ? 'unreached' : '', hop.id === rootCauseHop ? '◀── ROOT CAUSE' : ''].filter(Boolean).join(' ');
    lines.push(`${prefix}${branch}${where(hop)}  ${hop.operation}  ${status}  ${hop.durationMs.toFixed(1)} ms${marks ? '  ' + marks : ''}`);
    const childPrefix = top ? prefix : prefix + (last ? '   ' : '│  ');
    hop.children.forEach((c, i) => walk(c, childPrefix, i === hop.children.length - 1, false));
  };
  path.hops.forEach((h) => walk(h, '', true, true));
  lines.push('');
  lines.push(path.rootCause ? `root cause: ${path.rootCause.summary}` : `no failure: ${path.summary}`);
  for (const w of path.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n') + '\n';
}

/** Where to see the same trace next: the web UI's deep link and the JSON call. */
export function linksOf(queryUrl: string, traceId: string): string {
  const base = queryUrl.replace(/\/+$/, '');
  return `\nin the browser: ${base}/trace/${traceId}\nas JSON:        curl -s ${base}/api/v1/traces/${traceId}/path\n`;
}

/** Where the command writes; tests pass their own. */
export interface Output {
  write(text: string): unknown;
}

export async function runPath(argv: string[], out: Output = process.stdout, err: Output = process.stderr): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.write(helpText('tracemesh path <trace-id> [flags]', "Prints a trace's path across pods and names the hop where its failure began.", PATH_FLAGS));
    return 0;
  }
  const flags = parseFlags(PATH_FLAGS, argv);
  const traceId = flags._[0];
  if (traceId === undefined || flags._.length > 1) throw new ConfigError('give exactly one trace id: tracemesh path <trace-id>');
  const url = `${flags['query-url'].replace(/\/+$/, '')}/api/v1/traces/${encodeURIComponent(traceId)}/path`;
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new TracemeshError('QUERY_API_UNREACHABLE', `cannot reach the query API at ${flags['query-url']}: ${(err as Error).message}; is it running? set --query-url`, { cause: err });
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
    } catch {
      /* not JSON */
    }
    err.write(`tracemesh path: ${res.status}: ${message}\n`);
    return res.status === 404 ? 3 : 1;
  }
  const path = flags.json ? undefined : (JSON.parse(text) as TracePath);
  out.write(path ? renderPath(path) + linksOf(flags['query-url'], path.traceId) : text + '\n');
  return 0;
}
