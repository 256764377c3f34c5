import type { Socket } from 'node:net';
import type { HttpFilterChain } from '../config/model';
import type { HttpStats } from '../stats/scopes';
import { DELAYED_CLOSE_MS } from '../http/early-response';
import { BAD_REQUEST, HEADERS_TOO_LARGE, HEADER_TIMEOUT, REQUEST_TIMEOUT, STREAM_TIMEOUT } from './raw-replies';

// What both HTTP/1.1 codecs (node:http and the fast one) share: Envoy's timeouts and limits in
// the parser's terms, and how a request the parser refused is answered.

type Hcm = HttpFilterChain['hcm'];

/** The response a socket has in flight, as either codec keeps it on `socket._httpMessage`. */
export interface InFlightResponse {
  /** The request it answers (both codecs keep it), to tell its own body's errors from later bytes'. */
  readonly req?: { readonly complete: boolean } | null;
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  once(event: 'finish' | 'close', listener: () => void): unknown;
}

/**
 * Envoy's request_timeout (0: none) is the whole downstream request and request_headers_timeout
 * the headers; Node's defaults would cut long uploads. Node refuses a headersTimeout longer than a
 * non-zero requestTimeout, and checks both only every connectionsCheckingInterval (30 s by
 * default), so that interval is kept near a tenth of the shorter timeout.
 */
export function serverTimeouts(hcm: Hcm): { requestTimeout: number; headersTimeout: number; connectionsCheckingInterval: number } {
  const { requestTimeoutMs, requestHeadersTimeoutMs, streamIdleTimeoutMs } = hcm;
  // Without request_headers_timeout, headers that never finish are the stream idle timeout's
  // (Envoy notes that it may fire while large headers still trickle in), capped at 60 s.
  const headersTimeout = requestHeadersTimeoutMs || Math.min(60_000, requestTimeoutMs || 60_000, streamIdleTimeoutMs || 60_000);
  const shortest = Math.min(headersTimeout, requestTimeoutMs || Infinity);
  return { requestTimeout: requestTimeoutMs, headersTimeout, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(shortest / 10))) };
}

/** The parser refuses headers past this (HPE_HEADER_OVERFLOW → 431): max_request_headers_kb. */
export function maxHeaderBytes(hcm: Hcm): number {
  return hcm.maxRequestHeadersKb * 1024;
}

/** Node silently drops headers past maxHeadersCount: keep one more, so that passing the limit shows. */
export function headersCountSeen(hcm: Hcm): number {
  return hcm.commonHttpProtocolOptions.maxHeadersCount + 1;
}

/** Which of Envoy's timeouts the request/headers timer stood for, to count and answer it. */
function requestTimeoutKind(hcm: Hcm, headersComplete: boolean): 'request' | 'headers' | 'stream_idle' {
  if (headersComplete) return 'request';
  const { requestHeadersTimeoutMs, requestTimeoutMs, streamIdleTimeoutMs } = hcm;
  if (requestHeadersTimeoutMs > 0) return 'headers';
  // Otherwise the shortest of the bounds serverTimeouts() took (60 s being our own cap) fired.
  const request = requestTimeoutMs || Infinity;
  const idle = streamIdleTimeoutMs || Infinity;
  if (request <= idle && request <= 60_000) return 'request';
  return idle <= 60_000 ? 'stream_idle' : 'headers';
}

/** Malformed HTTP gets a 4xx and the connection is closed; the process carries on. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket, stats: HttpStats, hcm: Hcm): void {
  // Only what the parser refused is a protocol error: not a client that resets, nor the
  // truncated body of a connection we already answered and closed (a 408).
  const inFlight = (socket as Socket & { _httpMessage?: InFlightResponse | null })._httpMessage;
  let timeoutReply = REQUEST_TIMEOUT;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    const which = requestTimeoutKind(hcm, inFlight != null);
    (which === 'request' ? stats.rqTimeout : which === 'headers' ? stats.rqHeaderTimeout : stats.rqIdleTimeout).inc();
    timeoutReply = which === 'request' ? REQUEST_TIMEOUT : which === 'headers' ? HEADER_TIMEOUT : STREAM_TIMEOUT;
  } else if (err.code?.startsWith('HPE_') && socket.writable) stats.cxProtocolError.inc();
  // The in-flight request's own body does not parse (a bad chunk): as Envoy resets that stream,
  // a 400 if no response started, then the connection closes, which ends the upstream request
  // and its shadows. Waiting for the response instead would wait for a body end that never comes.
  if (err.code?.startsWith('HPE_') && inFlight?.req && !inFlight.req.complete) {
    if (socket.writable && !inFlight.headersSent) socket.end(err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : BAD_REQUEST);
    // A moment for the 400 to reach a client still sending (a reset would lose it), then closed.
    const linger = setTimeout(() => socket.destroy(), DELAYED_CLOSE_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
    return;
  }
  // Bytes after a complete request that do not parse: the request in flight is answered first,
  // then the 400 closes the connection (Envoy reads no further until it has answered).
  if (err.code?.startsWith('HPE_') && inFlight && !inFlight.writableFinished && socket.writable) {
    inFlight.once('finish', () => {
      if (socket.writable) socket.end(err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : BAD_REQUEST);
    });
    inFlight.once('close', () => {
      if (!inFlight.writableFinished) socket.destroy();
    });
    return;
  }
  // Never write a reply into a response that has already started (as Node's own handler).
  if (socket.writable && err.code !== 'ECONNRESET' && !inFlight?.headersSent) {
    socket.end(err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? timeoutReply : BAD_REQUEST);
  } else {
    socket.destroy();
  }
}
