// Errors with stable codes. Every component throws these inside and converts them to an
// HTTP, gRPC or OTLP status at exactly one boundary.

export class TracemeshError extends Error {
  /** A stable, machine-readable code such as `CONFIG_INVALID` or `CLICKHOUSE_UNAVAILABLE`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TracemeshError';
    this.code = code;
  }
}

/** Bad flags, environment variables or config files. The message names the offending input. */
export class ConfigError extends TracemeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options);
    this.name = 'ConfigError';
  }
}
