// Replies written straight onto a socket, where no response object can be used (the parser
// refused the request, or the response object still belongs to the router). Bodies are Envoy's.

function reply(status: string, body = ''): string {
  const type = body ? 'content-type: text/plain\r\n' : '';
  return `HTTP/1.1 ${status}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${type}connection: close\r\n\r\n${body}`;
}

export const BAD_REQUEST = reply('400 Bad Request');
export const FORBIDDEN = reply('403 Forbidden');
export const NOT_FOUND = reply('404 Not Found');
/** request_timeout. */
export const REQUEST_TIMEOUT = reply('408 Request Timeout', 'request timeout');
/** request_headers_timeout. */
export const HEADER_TIMEOUT = reply('408 Request Timeout', 'request header timeout');
/** stream_idle_timeout (or the route's idle_timeout) before any response byte went out. */
export const STREAM_TIMEOUT = reply('408 Request Timeout', 'stream timeout');
/** max_request_headers_kb, as Envoy's codec answers it. */
export const HEADERS_TOO_LARGE = reply('431 Request Header Fields Too Large', 'Request Header Fields Too Large');
