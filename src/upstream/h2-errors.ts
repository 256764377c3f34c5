import { constants } from 'node:http2';

// The HTTP/2 pool's error catalogue. Each carries a stable `code` that classifyUpstreamError
// (errors.ts) sorts: connect failures, resets and protocol errors, as Envoy counts them.

/** Socket error codes that already say "never connected"; kept as they are. */
const SOCKET_CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);

/** HTTP/2 error codes that mean the peer spoke the protocol wrong, not that it gave up. */
const PROTOCOL_CODES = new Set<number>([
  constants.NGHTTP2_PROTOCOL_ERROR,
  constants.NGHTTP2_FLOW_CONTROL_ERROR,
  constants.NGHTTP2_FRAME_SIZE_ERROR,
  constants.NGHTTP2_COMPRESSION_ERROR,
]);

// RFC 9113 §7, by value.
const CODE_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR',
  'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

/** `CANCEL` for 8, and so on; the number itself when it is not a known HTTP/2 error code. */
export function http2CodeName(code: number): string {
  return CODE_NAMES[code] ?? String(code);
}

/** The session never became usable: refused, unreachable, timed out, TLS or ALPN failed. */
export class UpstreamConnectError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamConnectError';
    this.code = code;
  }

  /** Wraps what failed a connect; socket codes that already mean "not connected" are kept. */
  static from(err: Error): UpstreamConnectError {
    if (err instanceof UpstreamConnectError) return err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    return new UpstreamConnectError(`upstream connect failed: ${err.message}`, SOCKET_CONNECT_CODES.has(code) ? code : 'SM_UPSTREAM_CONNECT_FAILED', { cause: err });
  }
}

/** undici's code for a connect timeout, so both pools' timeouts read the same. */
export function connectTimeoutError(ms: number): UpstreamConnectError {
  return new UpstreamConnectError(`upstream connect timed out after ${ms} ms`, 'UND_ERR_CONNECT_TIMEOUT');
}

/** The stream was reset (RST_STREAM, GOAWAY with an error, or the session died under it). */
export class UpstreamResetError extends Error {
  readonly code = 'SM_UPSTREAM_RESET';
  constructor(
    message: string,
    /** The HTTP/2 error code, when one was given. */
    readonly http2Code: number | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamResetError';
  }
}

/** The upstream's frames or headers broke HTTP/2 (a malformed response, a bad frame). */
export class UpstreamProtocolError extends Error {
  readonly code = 'SM_UPSTREAM_PROTOCOL_ERROR';
  constructor(
    message: string,
    readonly http2Code: number | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamProtocolError';
  }
}

/** A stream that ended with an HTTP/2 error code, as a reset or a protocol error. */
export function streamError(http2Code: number, where: string, cause?: unknown): UpstreamResetError | UpstreamProtocolError {
  const message = `upstream ${where} with ${http2CodeName(http2Code)}`;
  return PROTOCOL_CODES.has(http2Code) ? new UpstreamProtocolError(message, http2Code, { cause }) : new UpstreamResetError(message, http2Code, { cause });
}

/**
 * Why a stream closed before its response ended. A session that died takes its streams down with
 * its own error (a socket error, an nghttp2 error), which says more than the stream's code does.
 */
export function streamFailure(rstCode: number, streamErr: Error | null, goawayErr: Error | null, connectionLost: boolean): Error {
  if (goawayErr !== null) return goawayErr;
  const errCode = (streamErr as NodeJS.ErrnoException | null)?.code;
  if (streamErr !== null && errCode !== 'ERR_HTTP2_STREAM_ERROR') {
    if (streamErr instanceof PoolClosedError || streamErr instanceof UpstreamResetError || streamErr instanceof UpstreamProtocolError) return streamErr;
    // nghttp2 rejected what the peer sent (a bad frame, a broken header block).
    if (errCode === 'ERR_HTTP2_ERROR') return new UpstreamProtocolError(`upstream connection failed: ${streamErr.message}`, null, { cause: streamErr });
    return new UpstreamResetError(`upstream connection lost: ${streamErr.message}`, null, { cause: streamErr });
  }
  if (connectionLost) return new UpstreamResetError('upstream connection closed mid-stream', null);
  if (rstCode !== constants.NGHTTP2_NO_ERROR) return streamError(rstCode, 'reset the stream', streamErr ?? undefined);
  return new UpstreamResetError('upstream stream closed before the response ended', null, { cause: streamErr ?? undefined });
}

/** More requests wait for a stream than the pool allows (`maxPendingRequests`). */
export class PoolQueueFullError extends Error {
  readonly code = 'SM_UPSTREAM_QUEUE_FULL';
  constructor(limit: number) {
    super(`upstream pool queue full (${limit} waiting)`);
    this.name = 'PoolQueueFullError';
  }
}

/** The pool was closed or destroyed before the request got a stream. */
export class PoolClosedError extends Error {
  readonly code: 'UND_ERR_CLOSED' | 'UND_ERR_DESTROYED';
  constructor(how: 'closed' | 'destroyed') {
    super(`upstream pool ${how}`);
    this.name = 'PoolClosedError';
    this.code = how === 'closed' ? 'UND_ERR_CLOSED' : 'UND_ERR_DESTROYED';
  }
}

/** What `abort()` reports when the caller gave no reason; undici's code for the same. */
export class RequestAbortedError extends Error {
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('request aborted');
    this.name = 'RequestAbortedError';
  }
}
