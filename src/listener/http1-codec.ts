import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { HttpFilterChain } from '../config/model';
import type { ConnectionManager } from '../http/connection-manager';
import { DownstreamConnection } from './downstream-connection';
import { answerClientError, headersCountSeen, maxHeaderBytes, serverTimeouts } from './http1-rules';
import { NOT_FOUND } from './raw-replies';
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

/** The HTTP/1.1 codec of one filter chain, as the listener drives it. */
export interface Http1Codec {
  serve(handed: HandedSocket): void;
  /** A chain kept across an update takes the new connection manager's timeouts and limits. */
  applySettings(): void;
  /** Envoy's drain: idle connections close now, busy ones after the response in flight. */
  drain(): void;
  close(): void;
}

/**
 * The node:http codec of one filter chain (the fallback of the fast one): a node:http server that never listens itself. The
 * listener accepts, picks the chain, terminates TLS, and hands the socket over here.
 */
export class NodeHttp1Codec implements Http1Codec {
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
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
      answerClientError(err, socket, this.current().connectionManager.stats, this.current().chain.hcm));
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
}

export const PLAIN_HTTP1: StreamInfo = { protocol: 'HTTP/1.1', scheme: 'http', tls: null };

