import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { HttpFilterChain } from '../config/model';
import type { ConnectionManager } from '../http/connection-manager';
import { DownstreamConnection } from './downstream-connection';
import { BAD_REQUEST, HEADERS_TOO_LARGE, HEADER_TIMEOUT, NOT_FOUND, REQUEST_TIMEOUT, STREAM_TIMEOUT } from './raw-replies';
import type { StreamInfo } from '../http/stream-info';

/** What a codec reads of its filter chain at each event (the listener's config may change). */
export interface CodecChain {
  readonly chain: HttpFilterChain;
  readonly connectionManager: ConnectionManager;
}

/** A socket handed to a codec, with what the connection stage learnt about it. */
export interface HandedSocket {
  readonly socket: Socket;
  readonly info: StreamInfo;
}

/**
 * The HTTP/1.1 codec of one filter chain: a node:http server that never listens itself. The
 * listener accepts, picks the chain, terminates TLS, and hands the socket over here.
 */
export class Http1Codec {
  readonly #server: http.Server;
  readonly #connections = new WeakMap<Socket, DownstreamConnection>();
  /** Open connections, for a drain. */
  readonly #open = new Set<DownstreamConnection>();
  readonly #info = new WeakMap<Socket, StreamInfo>();

  constructor(private readonly current: () => CodecChain) {
    const hcm = current().chain.hcm;
    // Host is checked (and its absence answered and counted) by request-validation.ts, not by Node.
    // keepAliveTimeout 0: the connection's idle timer is ours (Envoy's idle_timeout, 1 h by default).
    const server = http.createServer({ keepAliveTimeout: 0, noDelay: true, requireHostHeader: false, ...serverTimeouts(hcm), maxHeaderSize: maxHeaderBytes(hcm) });
    server.maxHeadersCount = headersCountSeen(hcm);
    this.#server = server;
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const conn = this.#connections.get(req.socket);
      if (conn && !conn.onRequest(req, res)) return;
      this.current().connectionManager.handle(req, res, this.#info.get(req.socket) ?? PLAIN_HTTP1);
    });
    // A listener here means Node leaves the timed-out socket to us.
    server.on('timeout', (socket: Socket) => {
      const conn = this.#connections.get(socket);
      if (conn) conn.onTimeout();
      else socket.destroy();
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#clientError(err, socket));
    // Upgrades (WebSocket) are the connection manager's: tunnelled where upgrade_configs allow, else 403.
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      // A tunnel is a stream in flight until its socket closes: a drain must not cut it.
      this.#connections.get(socket)?.upgraded();
      this.current().connectionManager.upgrade(req, socket, head, this.#info.get(req.socket) ?? PLAIN_HTTP1);
    });
    // CONNECT needs a connect matcher (not supported): 404, as Envoy answers it.
    server.on('connect', (_req, socket: Socket) => socket.end(NOT_FOUND));
    // Node starts tracking connections (for closeIdleConnections and its request/headers
    // timeouts) when a server starts listening; this one never listens itself.
    server.emit('listening');
  }

  serve(handed: HandedSocket): void {
    const { socket, info } = handed;
    const cm = this.current().connectionManager;
    cm.stats.cxTotal.inc();
    cm.stats.cxActive.inc();
    cm.stats.cxHttp1Total.inc();
    socket.once('close', () => cm.stats.cxActive.dec());
    this.#info.set(socket, info);
    const conn = new DownstreamConnection(socket, () => ({ hcm: this.current().chain.hcm, stats: this.current().connectionManager.stats }));
    this.#connections.set(socket, conn);
    this.#open.add(conn);
    socket.once('close', () => this.#open.delete(conn));
    this.#server.emit('connection', socket);
    // A socket whose first bytes were looked at is paused with them put back: the parser reads on now.
    socket.resume();
  }

  /** A chain kept across an update takes the new connection manager's timeouts and limits. */
  applySettings(): void {
    const hcm = this.current().chain.hcm;
    const t = serverTimeouts(hcm);
    const server = this.#server;
    // Order matters: Node checks headersTimeout against requestTimeout on assignment.
    server.requestTimeout = 0;
    server.headersTimeout = t.headersTimeout;
    server.requestTimeout = t.requestTimeout;
    // Read by Node for each new connection's parser (the option has no typed setter).
    (server as http.Server & { maxHeaderSize: number }).maxHeaderSize = maxHeaderBytes(hcm);
    server.maxHeadersCount = headersCountSeen(hcm);
  }

  /** Envoy's drain: idle connections close now, busy ones after the response in flight. */
  drain(): void {
    for (const conn of this.#open) conn.drain();
  }

  /** Stops Node's connection tracking timer. */
  close(): void {
    this.#server.close();
  }

  #clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // Malformed HTTP gets a 4xx and the connection is closed; the process carries on.
    const stats = this.current().connectionManager.stats;
    const hcm = this.current().chain.hcm;
    // Only what the parser refused is a protocol error: not a client that resets, nor the
    // truncated body of a connection we already answered and closed (a 408).
    const inFlight = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    let timeoutReply = REQUEST_TIMEOUT;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      const which = requestTimeoutKind(hcm, inFlight != null);
      (which === 'request' ? stats.rqTimeout : which === 'headers' ? stats.rqHeaderTimeout : stats.rqIdleTimeout).inc();
      timeoutReply = which === 'request' ? REQUEST_TIMEOUT : which === 'headers' ? HEADER_TIMEOUT : STREAM_TIMEOUT;
    } else if (err.code?.startsWith('HPE_') && socket.writable) stats.cxProtocolError.inc();
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
}

const PLAIN_HTTP1: StreamInfo = { protocol: 'HTTP/1.1', scheme: 'http', tls: null };

type Hcm = HttpFilterChain['hcm'];

/**
 * Envoy's request_timeout (0: none) is the whole downstream request and request_headers_timeout
 * the headers; Node's defaults would cut long uploads. Node refuses a headersTimeout longer than a
 * non-zero requestTimeout, and checks both only every connectionsCheckingInterval (30 s by
 * default), so that interval is kept near a tenth of the shorter timeout.
 */
function serverTimeouts(hcm: Hcm): { requestTimeout: number; headersTimeout: number; connectionsCheckingInterval: number } {
  const { requestTimeoutMs, requestHeadersTimeoutMs, streamIdleTimeoutMs } = hcm;
  // Without request_headers_timeout, headers that never finish are the stream idle timeout's
  // (Envoy notes that it may fire while large headers still trickle in), capped at 60 s.
  const headersTimeout = requestHeadersTimeoutMs || Math.min(60_000, requestTimeoutMs || 60_000, streamIdleTimeoutMs || 60_000);
  const shortest = Math.min(headersTimeout, requestTimeoutMs || Infinity);
  return { requestTimeout: requestTimeoutMs, headersTimeout, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(shortest / 10))) };
}

/** Node's parser refuses headers past this (HPE_HEADER_OVERFLOW → 431): max_request_headers_kb. */
function maxHeaderBytes(hcm: Hcm): number {
  return hcm.maxRequestHeadersKb * 1024;
}

/** Node silently drops headers past maxHeadersCount: keep one more, so that passing the limit shows. */
function headersCountSeen(hcm: Hcm): number {
  return hcm.commonHttpProtocolOptions.maxHeadersCount + 1;
}

/** Which of Envoy's timeouts Node's request/headers timer stood for, to count and answer it. */
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
