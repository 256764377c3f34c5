import type { Socket } from 'node:net';
import { RequestContentLengthMismatchError } from './errors';
import { type RequestHead, expectsPayload } from './request-head';

// How a request is framed: a Buffer body's own length wins over the declared one, a stream goes
// with its declared length or chunked (as Envoy's HTTP/1 codec frames it: never from what the
// stream happens to hold already, so a chunked upload stays chunked however fast it arrived), a
// method that means no body sends no `content-length: 0`, and a declared length that disagrees
// with a Buffer body's refuses the request (as undici does) for the methods that must send one.

/**
 * The content-length to send: a number, null for none (no body, or a stream of unknown length,
 * which goes chunked), or the mismatch that refuses the request.
 */
export function bodyLength(req: RequestHead): number | null | RequestContentLengthMismatchError {
  const body = req.body;
  let length: number | null = body === null ? 0 : Buffer.isBuffer(body) ? body.length : null;
  if (length === null && req.declaredLength !== -1) length = req.declaredLength;
  if (length === 0 && !expectsPayload(req.method)) length = null;
  if (length !== null && length > 0 && req.declaredLength !== -1 && req.declaredLength !== length && sendsContentLength(req.method)) {
    return new RequestContentLengthMismatchError();
  }
  return length;
}

/** Request line, host, connection and header lines; the framing line and the blank line are the caller's. */
export function requestHead(req: RequestHead, hostLine: string, last: boolean): string {
  const connection = req.upgrade !== null ? `connection: upgrade\r\nupgrade: ${req.upgrade}\r\n` : last ? 'connection: close\r\n' : 'connection: keep-alive\r\n';
  return `${req.method} ${req.path} HTTP/1.1\r\n${req.hostLine ?? hostLine}${connection}${req.lines}`;
}

/** Methods whose declared length must match the body's (RFC 9110 §8.6: the others need not send one). */
function sendsContentLength(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' && method !== 'TRACE' && method !== 'CONNECT';
}

/** Below this a body rides in the head's string (latin1 maps bytes to chars one to one); above, head and body are corked into one writev. */
const INLINE_BODY_BYTES = 2048;

/** Head and a Buffer body, in one write. */
export function writeWithBody(socket: Socket, head: string, body: Buffer): void {
  if (body.length <= INLINE_BODY_BYTES) {
    socket.write(head + body.toString('latin1'), 'latin1');
    return;
  }
  socket.cork();
  socket.write(head, 'latin1');
  socket.write(body);
  socket.uncork();
}
