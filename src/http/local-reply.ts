import { type DownstreamResponse, isHttp2Response, withoutConnectionHeaders, writeHead } from './downstream';
import { grpcLocalReplyHeaders } from './grpc';

/** Bodies Envoy sends for its own replies, so clients and scripts see the same text. */
export const LOCAL_REPLY_BODIES = {
  noHealthyUpstream: 'no healthy upstream',
  connectFailure: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
  reset: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
  protocolError: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error',
  timeout: 'upstream request timeout',
  overflow: 'upstream connect error or disconnect/reset before headers. reset reason: overflow',
  streamDuration: 'downstream duration timeout',
  retryBufferOverflow: 'exceeded request buffer limit while retrying upstream',
} as const;

/** A local reply to a gRPC request: a gRPC error (its status, unless mapped from the HTTP one). */
export interface GrpcReply {
  readonly grpcStatus?: number;
}

/**
 * Answers from the proxy itself: status, text body, and the few headers Envoy sets. To a gRPC
 * request the answer is a gRPC error instead, as Envoy sends it: HTTP 200 and Trailers-Only.
 */
export function sendLocalReply(res: DownstreamResponse, status: number, body: string, serverName: string, extra?: Record<string, string>, grpc?: GrpcReply | null): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  let headers: Record<string, string | number> = { server: serverName, ...extra };
  if (isHttp2Response(res)) headers = withoutConnectionHeaders(headers) as Record<string, string | number>;
  if (grpc) {
    Object.assign(headers, grpcLocalReplyHeaders(status, body, grpc.grpcStatus));
    if (isHttp2Response(res)) {
      // Headers set but not written: end() then sends them as one HEADERS frame that ends the stream.
      for (const name of Object.keys(headers)) res.setHeader(name, headers[name]!);
      res.statusCode = 200;
      res.end();
      return;
    }
    headers['content-length'] = 0;
    writeHead(res, 200, headers);
    res.end();
    return;
  }
  if (body) {
    headers['content-type'] = 'text/plain';
    headers['content-length'] = Buffer.byteLength(body);
  } else {
    headers['content-length'] = 0;
  }
  writeHead(res, status, headers);
  res.end(body);
}
