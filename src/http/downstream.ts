import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { CONNECTION_SPECIFIC } from './headers';

// A request stream as the connection manager takes it from any codec: Node's HTTP/1.1 objects,
// or its HTTP/2 compatibility objects (same shape, one stream of a session each).

export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

export function isHttp2Response(res: DownstreamResponse): res is Http2ServerResponse {
  return 'stream' in res;
}

/** Response headers as both codecs' writeHead take them: a flat [name, value, …] list, or an object. */
export type ResponseHeaders = string[] | Record<string, string | string[] | number | undefined>;

/** writeHead on either codec (their signatures differ only in overloads TypeScript cannot unite). */
export function writeHead(res: DownstreamResponse, status: number, headers: ResponseHeaders): void {
  (res as ServerResponse).writeHead(status, headers as Record<string, string | string[]>);
}

/** write on either codec; false: wait for 'drain'. */
export function writeBody(res: DownstreamResponse, chunk: Buffer): boolean {
  return (res as ServerResponse).write(chunk);
}

/** HTTP/2 forbids connection-specific headers (Node throws on them): they go before writeHead. */
export function withoutConnectionHeaders(headers: ResponseHeaders): ResponseHeaders {
  if (Array.isArray(headers)) {
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (!CONNECTION_SPECIFIC.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
    return out;
  }
  const out: Record<string, string | string[] | number | undefined> = {};
  for (const name of Object.keys(headers)) if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) out[name] = headers[name];
  return out;
}

