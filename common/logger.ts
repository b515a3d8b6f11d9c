// Structured JSON logging to stderr, one object per line. Components take a Logger so tests
// can capture or silence it.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function errorFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Error) {
      const code = (v as { code?: unknown }).code;
      out[k] = { message: v.message, ...(code !== undefined ? { code } : {}) };
    } else {
      out[k] = v;
    }
  }
  return out;
}

export function createLogger(
  base: Record<string, unknown> = {},
  level: Level = (process.env['TRACEMESH_LOG_LEVEL'] as Level | undefined) ?? 'info',
  write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): Logger {
  const min = order[level] ?? order.info;
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (order[lvl] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level: lvl, msg, ...base, ...(fields ? errorFields(fields) : {}) }));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }, level, write),
  };
}

/** A logger that drops everything; for tests that assert on behaviour, not logs. */
export const silentLogger: Logger = createLogger({}, 'error', () => {});
