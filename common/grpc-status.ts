// gRPC status codes by name (grpc/doc/statuscodes.md), for code that reads
// `rpc.grpc.status_code` and has to say which status it was.

const NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** `INTERNAL` for 13; the number as text for a code outside the spec. */
export function grpcStatusName(code: number): string {
  return NAMES[code] ?? String(code);
}
