import { httpToGrpcStatus, isGrpcContentType } from '../http/grpc';
import type { LogEntry } from './entry';

// A gRPC request's status as Envoy's access log reads it: the trailers' grpc-status, else the
// headers' (a Trailers-Only answer), else the HTTP status mapped to gRPC.

const NAMES = [
  'OK', 'CANCELED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE',
  'DATA_LOSS', 'UNAUTHENTICATED',
];

/** GrpcStatusFilter's enum names, by number. */
export const GRPC_STATUS_NAMES: readonly string[] = NAMES;

/** `anyRequest`: for any request, as grpc_status_filter reads it; else gRPC requests only (%GRPC_STATUS%). */
export function grpcStatusOf(e: LogEntry, anyRequest = false): number | null {
  if (!anyRequest && !isGrpcContentType(e.requestHeader?.('content-type'))) return null;
  for (const get of [e.responseTrailer, e.responseHeader]) {
    const raw = get?.('grpc-status');
    if (raw !== undefined && /^\d+$/.test(raw)) return Number(raw);
  }
  return e.responseCode === 0 ? null : httpToGrpcStatus(e.responseCode);
}

/** %GRPC_STATUS(CAMEL_STRING | SNAKE_STRING | NUMBER)%; a code past the known ones prints as its number. */
export function grpcStatusText(status: number | null, format: string): string | number | null {
  if (status === null) return null;
  if (format === 'NUMBER') return status;
  const snake = NAMES[status];
  if (snake === undefined) return String(status);
  if (format === 'SNAKE_STRING') return snake;
  // Envoy's camel names: Ok, Canceled, InvalidArgument…
  return snake.toLowerCase().replace(/(^|_)([a-z])/g, (_m, _s, c: string) => c.toUpperCase());
}
