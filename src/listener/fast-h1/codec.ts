import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { NativeHttp } from '../../util/native-http';
import { DownstreamConnection } from '../downstream-connection';
import type { CodecChain, HandedSocket, Http1Codec } from '../http1-codec';
import { PLAIN_HTTP1 } from '../http1-codec';
import { answerClientError, maxHeaderBytes, serverTimeouts } from '../http1-rules';
import { NOT_FOUND } from '../raw-replies';
import type { StreamInfo } from '../../http/stream-info';
import { type ConnectionHost, FastConnection } from './connection';
import type { FastRequest } from './request';
import type { FastResponse } from './response';

/**
 * The fast HTTP/1.1 codec of one filter chain: sockets the listener hands over are parsed by
 * Node's native llhttp directly (no node:http server, IncomingMessage or ServerResponse), with
 * the same limits, timeouts and answers to bad input as the node:http codec.
 */
export class FastHttp1Codec implements Http1Codec, ConnectionHost {
  readonly #open = new Map<Socket, { fast: FastConnection; conn: DownstreamConnection; info: StreamInfo }>();
  #sweep: NodeJS.Timeout | null = null;
  #timeouts = { requestTimeout: 0, headersTimeout: 0, connectionsCheckingInterval: 30_000 };
  #maxHeaderBytes: number;

  constructor(private readonly current: () => CodecChain, private readonly native: NativeHttp) {
    const hcm = current().chain.hcm;
    this.#timeouts = serverTimeouts(hcm);
    this.#maxHeaderBytes = maxHeaderBytes(hcm);
  }

  serve(handed: HandedSocket): void {
    const { socket, info } = handed;
    const cm = this.current().connectionManager;
    cm.stats.cxTotal.inc();
    cm.stats.cxActive.inc();
    cm.stats.cxHttp1Total.inc();
    socket.setNoDelay(true);
    const conn = new DownstreamConnection(socket, () => ({ hcm: this.current().chain.hcm, stats: this.current().connectionManager.stats }));
    const fast = new FastConnection(socket, this, this.native, this.#maxHeaderBytes, cm.bufferLimitBytes);
    this.#open.set(socket, { fast, conn, info });
    socket.once('close', () => {
      cm.stats.cxActive.dec();
      this.#open.delete(socket);
      if (this.#open.size === 0) this.#stopSweep();
    });
    this.#startSweep();
    // A socket whose first bytes were looked at is paused with them put back: the parser reads on now.
    socket.resume();
  }

  applySettings(): void {
    const hcm = this.current().chain.hcm;
    this.#timeouts = serverTimeouts(hcm);
    this.#maxHeaderBytes = maxHeaderBytes(hcm);
    if (this.#sweep !== null) {
      this.#stopSweep();
      this.#startSweep();
    }
  }

  drain(): void {
    for (const { conn } of this.#open.values()) conn.drain();
  }

  close(): void {
    this.#stopSweep();
  }

  // implements ConnectionHost
  request(req: FastRequest, fast: FastResponse): void {
    const entry = this.#open.get(req.socket);
    // FastResponse has the part of ServerResponse that the connection manager, the filters and
    // the access log use (test/integration runs the whole suite on both codecs), not all of it.
    const res = fast as unknown as ServerResponse;
    if (entry && !entry.conn.onRequest(req, res)) return;
    this.current().connectionManager.handle(req, res, entry?.info ?? PLAIN_HTTP1);
  }

  upgrade(req: FastRequest, socket: Socket, head: Buffer): void {
    const entry = this.#open.get(socket);
    // A tunnel is a stream in flight until its socket closes: a drain must not cut it.
    entry?.conn.upgraded();
    this.current().connectionManager.upgrade(req, socket, head, entry?.info ?? PLAIN_HTTP1);
  }

  connect(socket: Socket): void {
    socket.end(NOT_FOUND);
  }

  clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    answerClientError(err, socket, this.current().connectionManager.stats, this.current().chain.hcm);
  }

  timeout(socket: Socket): void {
    const entry = this.#open.get(socket);
    if (entry) entry.conn.onTimeout();
    else socket.destroy();
  }

  /**
   * Envoy's request_timeout and request_headers_timeout, checked as Node checks its own: one
   * sweep over the open connections every connectionsCheckingInterval, not a timer per request.
   */
  #startSweep(): void {
    if (this.#sweep !== null) return;
    const { requestTimeout, headersTimeout, connectionsCheckingInterval } = this.#timeouts;
    if (requestTimeout === 0 && headersTimeout === 0) return;
    this.#sweep = setInterval(() => this.#expire(), connectionsCheckingInterval);
    this.#sweep.unref();
  }

  #stopSweep(): void {
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
  }

  #expire(): void {
    const { requestTimeout, headersTimeout } = this.#timeouts;
    const now = performance.now();
    for (const { fast } of this.#open.values()) {
      const started = fast.messageStartedAt;
      if (started === 0) continue;
      const age = now - started;
      if ((!fast.headersComplete && headersTimeout > 0 && age > headersTimeout) || (requestTimeout > 0 && age > requestTimeout)) fast.expire();
    }
  }
}
