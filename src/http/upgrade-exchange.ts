import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { UpstreamCluster } from '../upstream/cluster-manager';
import { classifyUpstreamError } from '../upstream/errors';
import type { Host } from '../upstream/host';
import type { PrimaryFailure } from '../upstream/forward';
import { reportConnected, reportFailure } from '../upstream/outlier/report';
import { writeHead } from './downstream';
import type { HeaderMap } from './headers';
import { LOCAL_REPLY_BODIES } from './local-reply';
import { splice } from './tunnel';
import { releaseSocket, switchingProtocolsHead } from './upgrade-response';

/** What the upgrade pipeline hands the exchange once the route, cluster and host are chosen. */
export interface UpgradeForward {
  readonly cluster: UpstreamCluster;
  readonly host: Host;
  readonly method: string;
  readonly path: string;
  /** Request headers, hop-by-hop ones gone: undici writes `connection: upgrade` and `upgrade` itself. */
  readonly headers: HeaderMap;
  /** The client's Upgrade value, sent as it came. */
  readonly upgrade: string;
  /** Envoy's route timeout (0: none): from the request until the upstream's answer, disarmed then. */
  readonly timeoutMs: number;
  /** stream_idle_timeout or the route's idle_timeout (0: none): the whole stream, tunnel included. */
  readonly idleTimeoutMs: number;
  /** max_stream_duration (0: none), from the start of the stream. */
  readonly streamDurationMs: number;
  /** The headers sent downstream, from the upstream's raw list: route edits applied, hop-by-hop out. */
  readonly responseHeaders: (status: number, raw: readonly Buffer[], elapsedMs: number) => HeaderMap;
}

/** The downstream side of one upgrade: its socket, what came after the request head, how to answer. */
export interface UpgradeDownstream {
  readonly socket: Socket;
  /** Bytes the client sent after its request head; they go upstream first once switched. */
  readonly head: Buffer;
  /** For any answer but a 101 (see closingResponse). */
  readonly res: ServerResponse;
  /** A local reply on `res`, with the route's response headers (the connection closes after it). */
  reply(status: number, body: string, extra?: Record<string, string>): void;
  /** The answer went out, for the connection manager's stats. */
  answered(status: number): void;
  /** The upstream switched protocols: the stream is a tunnel now. */
  tunnelled(): void;
  /** stream_idle_timeout fired (downstream_rq_idle_timeout). */
  idleTimedOut(): void;
}

/** Envoy's local replies to an upstream that failed before answering. */
const FAILURE_REPLIES: Record<Exclude<PrimaryFailure, 'downstream_reset'>, readonly [number, string]> = {
  connect_failure: [503, LOCAL_REPLY_BODIES.connectFailure],
  reset: [503, LOCAL_REPLY_BODIES.reset],
  protocol_error: [503, LOCAL_REPLY_BODIES.protocolError],
  timeout: [504, LOCAL_REPLY_BODIES.timeout],
};

class UpgradeAbort extends Error {
  constructor(readonly failure: PrimaryFailure) {
    super(`upgrade aborted: ${failure}`);
  }
}

/**
 * One upgrade request to its upstream, through the host's undici pool with `upgrade` set. A 101
 * is relayed and the two sockets are spliced until either closes; any other answer is relayed as a
 * response and the connection closes after it. The stream counts as one active upstream request
 * (max_requests) for as long as it lives, tunnel included.
 */
export class UpgradeExchange implements Dispatcher.DispatchHandler {
  #abortUpstream: ((err: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #routeTimer: NodeJS.Timeout | null = null;
  #durationTimer: NodeJS.Timeout | null = null;
  /** The upstream answered (101 or not): timeouts now only end the stream. */
  #answered = false;
  #finished = false;
  #status = 0;
  readonly #started = performance.now();
  readonly #onDrain = (): void => this.#resume?.();
  readonly #onDownstreamClose = (): void => this.#abort(new UpgradeAbort('downstream_reset'));

  constructor(
    private readonly fwd: UpgradeForward,
    private readonly down: UpgradeDownstream,
  ) {}

  start(): void {
    const { fwd, down } = this;
    fwd.host.active++;
    fwd.host.counters.rqTotal++;
    fwd.cluster.active++;
    fwd.cluster.stats.rqTotal.inc();
    fwd.cluster.stats.rqActive.inc();
    down.socket.once('close', this.#onDownstreamClose);
    // The socket's own inactivity timer: Node refreshes it on every read and write, both ways.
    down.socket.setTimeout(fwd.idleTimeoutMs);
    down.socket.on('timeout', () => this.#idle());
    if (fwd.timeoutMs > 0) this.#routeTimer = setTimeout(() => this.#abort(new UpgradeAbort('timeout')), fwd.timeoutMs);
    if (fwd.streamDurationMs > 0) {
      this.#durationTimer = setTimeout(() => this.#endStream(408, LOCAL_REPLY_BODIES.streamDuration), fwd.streamDurationMs);
      this.#durationTimer.unref();
    }
    fwd.host.pool.dispatch(
      { path: fwd.path, method: fwd.method, headers: fwd.headers as Record<string, string | string[]>, body: null, upgrade: fwd.upgrade } as Dispatcher.DispatchOptions,
      this,
    );
  }

  // implements Dispatcher.DispatchHandler (undici's native protocol)
  onConnect(abort: (err?: Error) => void): void {
    this.#abortUpstream = abort;
    if (this.#finished) abort(new UpgradeAbort('downstream_reset'));
    else reportConnected(this.fwd.host);
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    const { down } = this;
    // undici took every listener off the socket: without one, an error would end the process.
    socket.on('error', () => undefined);
    if (this.#finished || down.socket.destroyed) {
      socket.destroy();
      return;
    }
    this.#headersReceived(statusCode);
    const raw = (rawHeaders ?? []).map((h) => (typeof h === 'string' ? Buffer.from(h, 'latin1') : h));
    const headers = this.fwd.responseHeaders(statusCode, raw, performance.now() - this.#started);
    releaseSocket(down.res, down.socket);
    down.socket.off('close', this.#onDownstreamClose);
    down.socket.write(switchingProtocolsHead(headers));
    if (down.head.length > 0) socket.write(down.head);
    down.answered(statusCode);
    down.tunnelled();
    this.fwd.host.counters.rqSuccess++;
    splice(down.socket, socket, () => this.#finish());
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200 || this.#finished) return true;
    this.#headersReceived(statusCode);
    this.#resume = resume;
    // A refused upgrade: relayed as a response, and the connection closes after it.
    writeHead(this.down.res, statusCode, this.fwd.responseHeaders(statusCode, rawHeaders, performance.now() - this.#started));
    this.down.answered(statusCode);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#finished) return true;
    if (this.down.res.write(chunk)) return true;
    this.down.socket.once('drain', this.#onDrain);
    return false;
  }

  onComplete(): void {
    if (this.#finished) return;
    this.down.res.end();
    this.fwd.host.counters[this.#status >= 500 ? 'rqError' : 'rqSuccess']++;
    this.#finish();
  }

  onError(err: Error): void {
    if (this.#finished) return;
    this.#fail(err instanceof UpgradeAbort ? err.failure : classifyUpstreamError(err));
  }

  #headersReceived(status: number): void {
    this.#answered = true;
    this.#status = status;
    this.fwd.host.outlier?.putHttpResponseCode(status);
    // Envoy's route timeout covers the upgrade request until its answer, never the tunnel.
    if (this.#routeTimer) clearTimeout(this.#routeTimer);
    this.#routeTimer = null;
    this.fwd.cluster.stats.response(status);
  }

  /** stream_idle_timeout: a 408 while nothing was answered, else the stream (tunnel) ends. */
  #idle(): void {
    this.down.idleTimedOut();
    this.#endStream(408, 'stream timeout');
  }

  /** A downstream timer fired: answer when nothing was sent yet, else close both sides. */
  #endStream(status: number, body: string): void {
    if (this.#finished || this.#answered) {
      this.down.socket.destroy();
      return;
    }
    this.#abortUpstream?.(new UpgradeAbort('downstream_reset'));
    this.#finishFailed('downstream_reset');
    this.down.reply(status, body);
  }

  #abort(reason: UpgradeAbort): void {
    if (this.#finished) return;
    this.#abortUpstream?.(reason);
    // Aborting before undici connected reports nothing back: fail here (counted once).
    this.#fail(reason.failure);
  }

  #fail(failure: PrimaryFailure): void {
    if (this.#finished) return;
    this.#finishFailed(failure);
    if (failure !== 'downstream_reset') reportFailure(this.fwd.host, failure, this.#answered);
    if (failure === 'downstream_reset') {
      this.down.socket.destroy();
      return;
    }
    if (this.down.res.headersSent || this.down.socket.destroyed) {
      this.down.socket.destroy();
      return;
    }
    const [status, text] = FAILURE_REPLIES[failure];
    this.down.reply(status, text);
  }

  #finishFailed(failure: PrimaryFailure): void {
    const { cluster, host } = this.fwd;
    host.counters.rqError++;
    if (failure === 'timeout') {
      cluster.stats.rqTimeout.inc();
      host.counters.rqTimeout++;
    } else if (failure !== 'connect_failure') {
      cluster.stats.rqReset.inc();
    }
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#routeTimer) clearTimeout(this.#routeTimer);
    if (this.#durationTimer) clearTimeout(this.#durationTimer);
    this.down.socket.off('close', this.#onDownstreamClose);
    const { cluster, host } = this.fwd;
    host.active--;
    cluster.active--;
    cluster.stats.rqActive.dec();
    cluster.stats.rqTime.observe(performance.now() - this.#started);
  }
}
