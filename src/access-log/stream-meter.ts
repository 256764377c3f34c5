import type { DownstreamRequest, DownstreamResponse } from '../http/downstream';
import { isHttp2Response } from '../http/downstream';

// What an access log line needs to know of a request's bytes, measured without touching the data
// path of requests that are not logged: only a logged request's own objects get these wrappers.
// Node gives no per-request counters: the request body arrives through push() (both codecs call
// it for every chunk, and with null at the end), the response leaves through write(), end(),
// writeHead() and addTrailers(). A 'data' listener would not do: it would start the body flowing
// before the upstream takes it.

export interface StreamMeter {
  bytesReceived: number;
  /** performance.now() when the last byte of the request arrived; 0 while it has not. */
  requestEndAt: number;
  bytesSent: number;
  /** The headers given to writeHead (flat list or object), when a head was written. */
  head: unknown;
  trailers: Readonly<Record<string, unknown>> | null;
}

export function meterStream(req: DownstreamRequest, res: DownstreamResponse): StreamMeter {
  const m: StreamMeter = { bytesReceived: 0, requestEndAt: 0, bytesSent: 0, head: null, trailers: null };
  // A request without a body may have ended before the connection manager saw it (HTTP/1).
  if ((req as { complete?: boolean }).complete === true && !('stream' in req)) m.requestEndAt = performance.now();
  const push = req.push;
  req.push = function meteredPush(this: DownstreamRequest, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) m.requestEndAt ||= performance.now();
    else if (chunk !== undefined) m.bytesReceived += byteLength(chunk);
    return push.call(this, chunk, encoding);
  } as typeof req.push;

  const r = res as unknown as Record<string, (...args: unknown[]) => unknown>;
  const write = r.write!;
  const end = r.end!;
  const writeHead = r.writeHead!;
  const addTrailers = r.addTrailers!;
  // HTTP/2's end(chunk) goes through write(); HTTP/1's does not.
  const endCounts = !isHttp2Response(res);
  r.write = function meteredWrite(this: unknown, chunk: unknown, ...rest: unknown[]): unknown {
    m.bytesSent += byteLength(chunk);
    return write.call(this, chunk, ...rest);
  };
  r.end = function meteredEnd(this: unknown, chunk: unknown, ...rest: unknown[]): unknown {
    if (endCounts && typeof chunk !== 'function') m.bytesSent += byteLength(chunk);
    return end.call(this, chunk, ...rest);
  };
  r.writeHead = function meteredWriteHead(this: unknown, ...args: unknown[]): unknown {
    const last = args[args.length - 1];
    if (last !== null && typeof last === 'object') m.head = last;
    return writeHead.apply(this, args);
  };
  r.addTrailers = function meteredAddTrailers(this: unknown, t: unknown): unknown {
    if (t !== null && typeof t === 'object') m.trailers = t as Record<string, unknown>;
    return addTrailers.call(this, t);
  };
  return m;
}

function byteLength(chunk: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk);
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}
