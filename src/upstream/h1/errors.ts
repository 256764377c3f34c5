// The HTTP/1.1 pool's errors, with the names and codes undici gives the same failures, so that
// classifyUpstreamError (../errors.ts), the shadow's stats and the access log read them as they
// did when undici's Pool carried these requests. The pool-level ones (closed, queue full, an
// abort without a reason, a connect timeout) are shared with the HTTP/2 pool (../h2-errors.ts).

/** The socket failed or closed under a request, or the upstream sent what no request asked for. */
export class SocketError extends Error {
  readonly code = 'UND_ERR_SOCKET';
  constructor(message: string) {
    super(message);
    this.name = 'SocketError';
  }
}

/** Why the pool itself closed a connection (idle, reset after a response, aborted, upgraded): never a request's error. */
export class InformationalError extends Error {
  readonly code = 'UND_ERR_INFO';
  constructor(message: string) {
    super(message);
    this.name = 'InformationalError';
  }
}

/** The response broke HTTP/1.1; `code` is llhttp's (HPE_…). */
export class HTTPParserError extends Error {
  readonly code: string;
  constructor(reason: string, code: string) {
    super(`Response does not match the HTTP/1.1 protocol (${reason})`);
    this.name = 'HTTPParserError';
    this.code = code;
  }
}

/** The response ended before (or after) the length its content-length declared. */
export class ResponseContentLengthMismatchError extends Error {
  readonly code = 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH';
  constructor() {
    super('Response body length does not match content-length header');
    this.name = 'ResponseContentLengthMismatchError';
  }
}

/** The request body's length differs from its content-length header. */
export class RequestContentLengthMismatchError extends Error {
  readonly code = 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH';
  constructor() {
    super('Request body length does not match content-length header');
    this.name = 'RequestContentLengthMismatchError';
  }
}

/** The response head outgrew the parser's limit (Node's max header size). */
export class HeadersOverflowError extends Error {
  readonly code = 'UND_ERR_HEADERS_OVERFLOW';
  constructor() {
    super('Headers Overflow Error');
    this.name = 'HeadersOverflowError';
  }
}

/** A request the pool refuses before writing anything: a bad method, path, header or body. */
export class InvalidArgumentError extends Error {
  readonly code = 'UND_ERR_INVALID_ARG';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidArgumentError';
  }
}

/** A request feature HTTP/1.1 here does not do (`expect`). */
export class NotSupportedError extends Error {
  readonly code = 'UND_ERR_NOT_SUPPORTED';
  constructor(message: string) {
    super(message);
    this.name = 'NotSupportedError';
  }
}

/** Node's parse error (an Error with `code` HPE_… and `reason`), as the request hears it. */
export function parseFailure(err: Error & { code?: string; reason?: string }, contentLength: number, bodyBytes: number): Error {
  // undici reports a body cut short against its declared length as a length mismatch, whatever llhttp said.
  if (contentLength >= 0 && bodyBytes !== contentLength) return new ResponseContentLengthMismatchError();
  if (err.code === 'HPE_HEADER_OVERFLOW') return new HeadersOverflowError();
  return new HTTPParserError(err.reason ?? err.message, err.code ?? 'HPE_UNKNOWN');
}
