// The HTTP/1.1 pool's errors, with the names and codes undici gives the same failures, so that
// classifyUpstreamError (../errors.ts), the shadow's stats and the access log read them as they
// did when undici's Pool carried these requests. The pool-level ones (closed, queue full, an
// abort without a reason, a connect timeout) are shared with the HTTP/2 pool (../h2-errors.ts).

/** An error with undici's name and code for the same failure. */
class PoolError extends Error {
  constructor(name: string, readonly code: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** The socket failed or closed under a request, or the upstream sent what no request asked for. */
export class SocketError extends PoolError {
  constructor(message: string) {
    super('SocketError', 'UND_ERR_SOCKET', message);
  }
}

/** Why the pool itself closed a connection (idle, reset after a response, aborted, upgraded): never a request's error. */
export class InformationalError extends PoolError {
  constructor(message: string) {
    super('InformationalError', 'UND_ERR_INFO', message);
  }
}

/** The response broke HTTP/1.1; `code` is llhttp's (HPE_…). */
export class HTTPParserError extends PoolError {
  constructor(reason: string, code: string) {
    super('HTTPParserError', code, `Response does not match the HTTP/1.1 protocol (${reason})`);
  }
}

/** The response ended before (or after) the length its content-length declared. */
export class ResponseContentLengthMismatchError extends PoolError {
  constructor() {
    super('ResponseContentLengthMismatchError', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'Response body length does not match content-length header');
  }
}

/** The request body's length differs from its content-length header. */
export class RequestContentLengthMismatchError extends PoolError {
  constructor() {
    super('RequestContentLengthMismatchError', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'Request body length does not match content-length header');
  }
}

/** The response head outgrew the parser's limit (Node's max header size). */
export class HeadersOverflowError extends PoolError {
  constructor() {
    super('HeadersOverflowError', 'UND_ERR_HEADERS_OVERFLOW', 'Headers Overflow Error');
  }
}

/** A request the pool refuses before writing anything: a bad method, path, header or body. */
export class InvalidArgumentError extends PoolError {
  constructor(message: string) {
    super('InvalidArgumentError', 'UND_ERR_INVALID_ARG', message);
  }
}

/** A request feature HTTP/1.1 here does not do (`expect`). */
export class NotSupportedError extends PoolError {
  constructor(message: string) {
    super('NotSupportedError', 'UND_ERR_NOT_SUPPORTED', message);
  }
}

/** Node's parse error (an Error with `code` HPE_… and `reason`), as the request hears it. */
export function parseFailure(err: Error & { code?: string; reason?: string }, contentLength: number, bodyBytes: number): Error {
  // undici reports a body cut short against its declared length as a length mismatch, whatever llhttp said.
  if (contentLength >= 0 && bodyBytes !== contentLength) return new ResponseContentLengthMismatchError();
  if (err.code === 'HPE_HEADER_OVERFLOW') return new HeadersOverflowError();
  return new HTTPParserError(err.reason ?? err.message, err.code ?? 'HPE_UNKNOWN');
}
