// gRPC status codes by name (grpc/doc/statuscodes.md), for code that reads
// `rpc.grpc.status_code` and has to say which status it was.

export const GRPC_STATUS_NAMES = [
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
] as const;
export type GrpcStatusName = (typeof GRPC_STATUS_NAMES)[number];

/** `INTERNAL` for 13; the number as text for a code outside the spec. */
export function grpcStatusName(code: number): string {
  return (GRPC_STATUS_NAMES as readonly string[])[code] ?? String(code);
}
