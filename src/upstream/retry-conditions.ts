// Envoy's retry conditions (x-envoy-retry-on, x-envoy-retry-grpc-on, RetryPolicy.retry_on) as a
// bit set, and the two pure questions the router asks of them: would this response, or this
// failure, be retried? Counting, limits and back-off live in retry-state.ts.

export const RETRY_ON_5XX = 1 << 0;
export const RETRY_ON_GATEWAY_ERROR = 1 << 1;
export const RETRY_ON_CONNECT_FAILURE = 1 << 2;
export const RETRY_ON_RETRIABLE_4XX = 1 << 3;
export const RETRY_ON_REFUSED_STREAM = 1 << 4;
export const RETRY_ON_RETRIABLE_STATUS_CODES = 1 << 5;
export const RETRY_ON_RETRIABLE_HEADERS = 1 << 6;
export const RETRY_ON_RESET = 1 << 7;
export const RETRY_ON_RESET_BEFORE_REQUEST = 1 << 8;
export const RETRY_ON_ENVOY_RATE_LIMITED = 1 << 9;
export const RETRY_ON_GRPC_CANCELLED = 1 << 16;
export const RETRY_ON_GRPC_DEADLINE_EXCEEDED = 1 << 17;
export const RETRY_ON_GRPC_INTERNAL = 1 << 18;
export const RETRY_ON_GRPC_RESOURCE_EXHAUSTED = 1 << 19;
export const RETRY_ON_GRPC_UNAVAILABLE = 1 << 20;
const RETRY_ON_GRPC_ANY = RETRY_ON_GRPC_CANCELLED | RETRY_ON_GRPC_DEADLINE_EXCEEDED | RETRY_ON_GRPC_INTERNAL | RETRY_ON_GRPC_RESOURCE_EXHAUSTED | RETRY_ON_GRPC_UNAVAILABLE;

const HTTP_CONDITIONS: Readonly<Record<string, number>> = {
  '5xx': RETRY_ON_5XX,
  'gateway-error': RETRY_ON_GATEWAY_ERROR,
  'connect-failure': RETRY_ON_CONNECT_FAILURE,
  'retriable-4xx': RETRY_ON_RETRIABLE_4XX,
  'refused-stream': RETRY_ON_REFUSED_STREAM,
  'retriable-status-codes': RETRY_ON_RETRIABLE_STATUS_CODES,
  'retriable-headers': RETRY_ON_RETRIABLE_HEADERS,
  reset: RETRY_ON_RESET,
  'reset-before-request': RETRY_ON_RESET_BEFORE_REQUEST,
  'envoy-ratelimited': RETRY_ON_ENVOY_RATE_LIMITED,
};

const GRPC_CONDITIONS: Readonly<Record<string, number>> = {
  cancelled: RETRY_ON_GRPC_CANCELLED,
  'deadline-exceeded': RETRY_ON_GRPC_DEADLINE_EXCEEDED,
  internal: RETRY_ON_GRPC_INTERNAL,
  'resource-exhausted': RETRY_ON_GRPC_RESOURCE_EXHAUSTED,
  unavailable: RETRY_ON_GRPC_UNAVAILABLE,
};

/** gRPC status codes by the condition that retries them. */
const GRPC_STATUS_CONDITION: Readonly<Record<number, number>> = {
  1: RETRY_ON_GRPC_CANCELLED,
  4: RETRY_ON_GRPC_DEADLINE_EXCEEDED,
  8: RETRY_ON_GRPC_RESOURCE_EXHAUSTED,
  13: RETRY_ON_GRPC_INTERNAL,
  14: RETRY_ON_GRPC_UNAVAILABLE,
};

function parse(list: string, table: Readonly<Record<string, number>>): number {
  let mask = 0;
  for (const raw of list.split(',')) mask |= table[raw.trim()] ?? 0;
  return mask;
}

/** x-envoy-retry-on's conditions; unknown ones are ignored, as Envoy does. */
export function parseRetryOn(list: string): number {
  return parse(list, HTTP_CONDITIONS);
}

/** x-envoy-retry-grpc-on's conditions; unknown ones are ignored. */
export function parseRetryGrpcOn(list: string): number {
  return parse(list, GRPC_CONDITIONS);
}

/** retry_on in config holds both kinds. */
export function parseConfigRetryOn(conditions: readonly string[]): number {
  const joined = conditions.join(',');
  return parseRetryOn(joined) | parseRetryGrpcOn(joined);
}

/** How an attempt failed before its response, as the retry conditions tell them apart. */
export type AttemptFailure =
  | 'connect_failure'
  | 'reset'
  | 'protocol_error'
  /** HTTP/2 REFUSED_STREAM: the upstream did not process the request. */
  | 'refused_stream'
  /** per_try_timeout or per_try_idle_timeout: the proxy reset the attempt (Envoy's LocalReset). */
  | 'per_try_timeout'
  /** The pool refused to queue the request (Envoy's Overflow): never retried. */
  | 'overflow';

/** Envoy's RetryStateImpl::wouldRetryFromReset. */
export function wouldRetryFailure(mask: number, failure: AttemptFailure): boolean {
  if (failure === 'overflow') return false;
  if (failure === 'connect_failure' && (mask & RETRY_ON_CONNECT_FAILURE) !== 0) return true;
  // Only a connection that never opened is sure to have carried no byte of the request.
  if (failure === 'connect_failure' && (mask & RETRY_ON_RESET_BEFORE_REQUEST) !== 0) return true;
  if ((mask & (RETRY_ON_RESET | RETRY_ON_5XX | RETRY_ON_GATEWAY_ERROR)) !== 0) return true;
  return failure === 'refused_stream' && (mask & RETRY_ON_REFUSED_STREAM) !== 0;
}

/** What a response decision reads of the response. */
export interface ResponseView {
  readonly status: number;
  /** A response header's value (repeated lines joined by ','), undefined when absent; callable alone. */
  readonly header: (name: string) => string | undefined;
}

/** Envoy's RetryStateImpl::wouldRetryFromHeaders; `headers` are retriable_headers' matchers. */
export function wouldRetryResponse(mask: number, res: ResponseView, codes: readonly number[],
  headers: ReadonlyArray<(lookup: (name: string) => string | undefined) => boolean>): boolean {
  // An upstream Envoy's rate limit is retried only when asked for, whatever its status.
  if (res.header('x-envoy-ratelimited') !== undefined) return (mask & RETRY_ON_ENVOY_RATE_LIMITED) !== 0;
  const s = res.status;
  if ((mask & RETRY_ON_5XX) !== 0 && s >= 500 && s <= 599) return true;
  if ((mask & RETRY_ON_GATEWAY_ERROR) !== 0 && s >= 502 && s <= 504) return true;
  if ((mask & RETRY_ON_RETRIABLE_4XX) !== 0 && s === 409) return true;
  if ((mask & RETRY_ON_RETRIABLE_STATUS_CODES) !== 0 && codes.includes(s)) return true;
  if ((mask & RETRY_ON_RETRIABLE_HEADERS) !== 0 && headers.some((h) => h(res.header))) return true;
  if ((mask & RETRY_ON_GRPC_ANY) !== 0) {
    // Only a grpc-status in the headers (a Trailers-Only answer) counts; trailers come too late.
    const raw = res.header('grpc-status');
    const code = raw === undefined || !/^\d+$/.test(raw.trim()) ? -1 : Number(raw.trim());
    const condition = GRPC_STATUS_CONDITION[code];
    if (condition !== undefined && (mask & condition) !== 0) return true;
  }
  return false;
}
