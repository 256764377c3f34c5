import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpConnectionManager } from '../config/model';
import type { HttpStats } from '../stats/scopes';
import { STREAM_TIMEOUT } from './raw-replies';

const TOO_MANY_HEADERS = 'Request Header Fields Too Large';
/** How long a timed-out stream's 408 may take to flush before the socket is destroyed anyway. */
const FLUSH_GRACE_MS = 1000;

/** What the connection reads from its listener at each event (the listener's config may change). */
export interface ConnectionSettings {
  readonly hcm: HttpConnectionManager;
  readonly stats: HttpStats;
}

/**
 * Envoy's connection manager timers and limits for one downstream HTTP/1.1 connection:
 *   - idle_timeout: no request in flight for that long closes the connection;
 *   - stream_idle_timeout (or the route's idle_timeout): a request with no bytes received or sent
 *     for that long is ended, with a 408 when nothing was sent yet, else with a reset;
 *   - max_connection_duration: the connection closes, after the request in flight if any;
 *   - max_requests_per_connection: the last response carries `connection: close`.
 * Both idle timers are the socket's own inactivity timeout, which Node refreshes on every read
 * and write: exactly "no activity". Only one of them is armed at a time.
 */
export class DownstreamConnection {
  #requests = 0;
  #active = 0;
  #draining = false;
  #durationTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly settings: () => ConnectionSettings,
  ) {
    const o = settings().hcm.commonHttpProtocolOptions;
    socket.setTimeout(o.idleTimeoutMs);
    if (o.maxConnectionDurationMs > 0) {
      this.#durationTimer = setTimeout(() => this.#maxDurationReached(), o.maxConnectionDurationMs);
      this.#durationTimer.unref();
      socket.once('close', () => clearTimeout(this.#durationTimer!));
    }
  }

  /**
   * A request's headers are in. Returns false when the request was answered here (too many
   * headers: Envoy's codec refuses them with a 431 and closes the connection).
   */
  onRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const { hcm, stats } = this.settings();
    const o = hcm.commonHttpProtocolOptions;
    this.#active++;
    this.#requests++;
    res.once('close', () => this.#requestDone());
    this.socket.setTimeout(hcm.streamIdleTimeoutMs);
    if (req.rawHeaders.length / 2 > o.maxHeadersCount) {
      stats.cxProtocolError.inc();
      res.shouldKeepAlive = false;
      res.writeHead(431, { 'content-length': Buffer.byteLength(TOO_MANY_HEADERS), 'content-type': 'text/plain', connection: 'close' });
      res.end(TOO_MANY_HEADERS);
      req.resume();
      return false;
    }
    if (o.maxRequestsPerConnection > 0 && this.#requests === o.maxRequestsPerConnection) {
      stats.cxMaxRequestsReached.inc();
      this.#draining = true;
    }
    // Node writes `connection: close` on this response and closes the connection after it.
    if (this.#draining) res.shouldKeepAlive = false;
    return true;
  }

  /** The socket was inactive for as long as its armed timer allows. */
  onTimeout(): void {
    const { stats } = this.settings();
    if (this.#active === 0) {
      stats.cxIdleTimeout.inc();
      this.socket.destroy();
      return;
    }
    stats.rqIdleTimeout.inc();
    const res = (this.socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (res && !res.headersSent && this.socket.writable) {
      // The 408 goes out on the socket itself: the response object still belongs to the router,
      // which sees the close and resets the upstream request (and its shadows) as for any client
      // that goes away.
      const grace = setTimeout(() => this.socket.destroy(), FLUSH_GRACE_MS);
      grace.unref();
      this.socket.end(STREAM_TIMEOUT, () => {
        clearTimeout(grace);
        this.socket.destroy();
      });
    } else {
      this.socket.destroy();
    }
  }

  #requestDone(): void {
    this.#active--;
    if (this.#active > 0 || this.socket.destroyed) return;
    if (this.#draining) {
      this.socket.destroySoon();
      return;
    }
    this.socket.setTimeout(this.settings().hcm.commonHttpProtocolOptions.idleTimeoutMs);
  }

  #maxDurationReached(): void {
    if (this.socket.destroyed) return;
    this.settings().stats.cxMaxDurationReached.inc();
    this.drain();
  }

  /** The connection became a tunnel (an upgrade): busy until it closes. */
  upgraded(): void {
    this.#active++;
  }

  /** The listener drains (or the connection reached its max duration). */
  drain(): void {
    if (this.socket.destroyed) return;
    this.#draining = true;
    // Envoy drains: an idle connection closes now, a busy one after the response in flight.
    if (this.#active === 0) this.socket.destroy();
    else {
      const res = (this.socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (res && !res.headersSent) res.shouldKeepAlive = false;
    }
  }
}
