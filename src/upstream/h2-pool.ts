import { EventEmitter } from 'node:events';
import type { ClientSessionOptions } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import type { Dispatcher } from 'undici';
import { PoolClosedError, PoolQueueFullError, UpstreamConnectError } from './h2-errors';
import { type ExchangeOwner, H2Exchange, type UpstreamDispatchOptions } from './h2-exchange';
import { H2Session, type SessionEvents, type SessionOptions } from './h2-session';

export type { UpstreamDispatchOptions } from './h2-exchange';

/**
 * What the proxy needs from an endpoint's connection pool: undici's Pool has it, and so has
 * Http2Pool. Handlers speak undici's legacy protocol (onConnect, onHeaders, onData, onComplete,
 * onError). Events: 'connect' (origin, [pool]) when a connection is up, 'connectionError'
 * (origin, [pool], err) when one failed to come up, 'disconnect' (origin, [pool], err) when an
 * established one went away.
 */
export interface UpstreamPool {
  dispatch(opts: UpstreamDispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  /** Lets what is queued and in flight finish, then closes the connections. */
  close(): Promise<void>;
  /** Fails what is queued and in flight and closes the connections now. */
  destroy(): Promise<void>;
  on(event: 'connect' | 'connectionError' | 'disconnect', listener: (...args: any[]) => void): this;
}

export interface Http2PoolOptions {
  /** Socket connect, TLS handshake and the peer's first SETTINGS, together (0: no limit). Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Sessions per endpoint that take new streams (draining ones are not counted). Default 1024. */
  readonly maxConnections?: number;
  /** Streams per session; the peer's SETTINGS_MAX_CONCURRENT_STREAMS lowers it. Default 2147483647. */
  readonly maxConcurrentStreams?: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE we announce, capped at 2^31-1. Default 268435456 (Envoy's). */
  readonly initialStreamWindowSize?: number;
  /** The connection's receive window, capped at 2^31-1. Default 268435456 (Envoy's). */
  readonly initialConnectionWindowSize?: number;
  /** Node's maxSessionMemory per session, in MB; past it new streams are refused. Default 64. */
  readonly maxSessionMemoryMb?: number;
  /** A session without streams for this long is closed (0: never). Default 3600000 (Envoy's 1 h). */
  readonly idleTimeoutMs?: number;
  /** Streams a session serves before it takes no more and closes when done (0: unlimited). Default 0. */
  readonly maxRequestsPerConnection?: number;
  /** Requests waiting for a stream; past it dispatch fails with SM_UPSTREAM_QUEUE_FULL. Default 1024. */
  readonly maxPendingRequests?: number;
  /** TLS (with ALPN h2) when set, passed to tls.connect as given; plaintext h2c when null. */
  readonly tls?: ConnectionOptions | (() => ConnectionOptions | null) | null;
  /** Opens the transport instead of net/tls (tests). */
  readonly createConnection?: ((origin: URL, options: ClientSessionOptions) => Duplex) | null;
}

/** SETTINGS_MAX_CONCURRENT_STREAMS is 32-bit, but Envoy's (and our) bound is 2^31-1. */
const MAX_STREAMS = 2_147_483_647;

export const HTTP2_POOL_DEFAULTS = {
  connectTimeoutMs: 5000,
  maxConnections: 1024,
  maxConcurrentStreams: MAX_STREAMS,
  initialStreamWindowSize: 268_435_456,
  initialConnectionWindowSize: 268_435_456,
  maxSessionMemoryMb: 64,
  idleTimeoutMs: 3_600_000,
  maxRequestsPerConnection: 0,
  maxPendingRequests: 1024,
} as const;

/**
 * HTTP/2 connections to one endpoint (`http://ip:port` or `https://ip:port`), on node:http2.
 * Requests go to the oldest session with a free stream; when all are full another session opens
 * (up to maxConnections); past that they wait in a bounded queue. A session that got GOAWAY,
 * idled out or served its quota takes no new streams and closes once its streams are done.
 */
export class Http2Pool extends EventEmitter implements UpstreamPool, ExchangeOwner {
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  readonly #origin: URL;
  readonly #options: Required<Omit<Http2PoolOptions, 'tls' | 'createConnection'>>;
  readonly #sessionOptions: SessionOptions;
  readonly #sessions = new Set<H2Session>();
  #queue: H2Exchange[] = [];
  #state: 'open' | 'closing' | 'destroyed' = 'open';
  #closeWaiters: Array<() => void> = [];
  #dispatched = 0;
  #scheduling = false;
  #again = false;
  readonly #events: SessionEvents;

  constructor(origin: string, options: Http2PoolOptions = {}) {
    super();
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`Http2Pool: origin must be http: or https:, got ${origin}`);
    this.#origin = new URL(url.origin);
    this.scheme = url.protocol === 'https:' ? 'https' : 'http';
    this.authority = url.host;
    const o = { ...HTTP2_POOL_DEFAULTS, ...definedOnly(options) };
    for (const [name, value] of Object.entries(o)) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new TypeError(`Http2Pool: ${name} must be a number >= 0`);
    }
    if (o.maxConnections < 1 || o.maxConcurrentStreams < 1) throw new TypeError('Http2Pool: maxConnections and maxConcurrentStreams must be at least 1');
    this.#options = o;
    this.#sessionOptions = {
      connectTimeoutMs: o.connectTimeoutMs,
      maxConcurrentStreams: Math.min(o.maxConcurrentStreams, MAX_STREAMS),
      initialStreamWindowSize: o.initialStreamWindowSize,
      initialConnectionWindowSize: o.initialConnectionWindowSize,
      maxSessionMemoryMb: o.maxSessionMemoryMb,
      idleTimeoutMs: o.idleTimeoutMs,
      maxRequestsPerConnection: o.maxRequestsPerConnection,
      tls: options.tls ?? (this.scheme === 'https' ? {} : null),
      createConnection: options.createConnection ?? null,
    };
    this.#events = {
      ready: () => {
        this.emit('connect', this.#origin, [this]);
        this.#schedule();
      },
      connectFailed: (session, err) => {
        this.#sessions.delete(session);
        this.emit('connectionError', this.#origin, [this], err);
        // The requests this session was opened for fail, as Envoy's pending requests do; only
        // those the other connecting sessions can take keep waiting (so a refusing peer does
        // not turn into a reconnect loop).
        let connecting = 0;
        for (const s of this.#sessions) if (s.connecting) connecting++;
        const keep = connecting * this.#sessionOptions.maxConcurrentStreams;
        if (this.#queue.length > keep) this.#failQueue(err, this.#queue.length - keep);
        this.#schedule();
      },
      changed: () => this.#schedule(),
      closed: (session, wasReady, err) => {
        this.#sessions.delete(session);
        if (wasReady) this.emit('disconnect', this.#origin, [this], err);
        this.#schedule();
      },
    };
  }

  // implements UpstreamPool
  dispatch(opts: UpstreamDispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const exchange = new H2Exchange(opts, handler, this, this.#dispatched++);
    if (this.#state !== 'open') {
      const err = new PoolClosedError(this.#state === 'closing' ? 'closed' : 'destroyed');
      queueMicrotask(() => exchange.fail(err));
      return false;
    }
    if (this.#queue.length >= this.#options.maxPendingRequests) {
      const err = new PoolQueueFullError(this.#options.maxPendingRequests);
      queueMicrotask(() => exchange.fail(err));
      return false;
    }
    this.#queue.push(exchange);
    this.#schedule();
    return this.#queue.length === 0;
  }

  async close(): Promise<void> {
    if (this.#state === 'destroyed') return;
    this.#state = 'closing';
    const done = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    this.#schedule();
    return done;
  }

  async destroy(): Promise<void> {
    if (this.#state !== 'destroyed') {
      this.#state = 'destroyed';
      const err = new PoolClosedError('destroyed');
      this.#failQueue(err);
      for (const s of this.#sessions) s.destroy(err);
    }
    const done = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    this.#finishIfEmpty();
    return done;
  }

  // implements ExchangeOwner
  retry(exchange: H2Exchange): void {
    if (this.#state === 'destroyed') {
      exchange.fail(new PoolClosedError('destroyed'));
      return;
    }
    // Ahead of everything dispatched after it: refused requests are the oldest waiting.
    let at = 0;
    while (at < this.#queue.length && this.#queue[at]!.seq < exchange.seq) at++;
    this.#queue.splice(at, 0, exchange);
    this.#schedule();
  }

  /** A snapshot for admin pages and tests. */
  stats(): { sessions: number; connecting: number; activeStreams: number; pending: number } {
    let connecting = 0;
    let activeStreams = 0;
    for (const s of this.#sessions) {
      if (s.connecting) connecting++;
      activeStreams += s.active;
    }
    return { sessions: this.#sessions.size, connecting, activeStreams, pending: this.#queue.length };
  }

  /** Hands waiting requests to sessions with room, opens sessions when needed, finishes a close. */
  #schedule(): void {
    // Handlers run inside (onConnect), and may dispatch again: one loop at a time.
    if (this.#scheduling) {
      this.#again = true;
      return;
    }
    this.#scheduling = true;
    try {
      do {
        this.#again = false;
        this.#assign();
      } while (this.#again);
    } finally {
      this.#scheduling = false;
    }
    if (this.#state === 'closing') this.#closeWhenIdle();
    this.#finishIfEmpty();
  }

  #assign(): void {
    if (this.#state === 'destroyed') return;
    while (this.#queue.length > 0) {
      const exchange = this.#queue[0]!;
      if (exchange.done) {
        this.#queue.shift();
        continue;
      }
      const session = this.#pick();
      if (session === null) break;
      this.#queue.shift();
      exchange.start(session);
    }
    if (this.#queue.length > 0) this.#maybeConnect();
  }

  /** The oldest session with a free stream: packing streams keeps the others idle enough to close. */
  #pick(): H2Session | null {
    for (const s of this.#sessions) if (s.hasRoom) return s;
    return null;
  }

  #maybeConnect(): void {
    let open = 0;
    let connecting = 0;
    for (const s of this.#sessions) {
      if (s.connecting) connecting++;
      if (s.connecting || s.accepting) open++;
    }
    if (open >= this.#options.maxConnections) return;
    // A connecting session is counted as able to take the configured stream limit; if its peer
    // announces less, the rest get another session once it is ready.
    if (connecting * this.#sessionOptions.maxConcurrentStreams >= this.#queue.length) return;
    let session: H2Session;
    try {
      session = new H2Session(this.#origin, this.#sessionOptions, this.#events);
    } catch (err) {
      // tls.connect throws at once on options it cannot use (a PEM it cannot parse).
      const failure = UpstreamConnectError.from(err as Error);
      this.emit('connectionError', this.#origin, [this], failure);
      if (connecting === 0) this.#failQueue(failure);
      return;
    }
    this.#sessions.add(session);
  }

  /** Fails the `count` oldest waiting requests (all by default). */
  #failQueue(err: Error, count = this.#queue.length): void {
    for (const exchange of this.#queue.splice(0, count)) exchange.fail(err);
  }

  #closeWhenIdle(): void {
    if (this.#queue.length > 0) return;
    for (const s of this.#sessions) if (s.active === 0) s.drain();
  }

  #finishIfEmpty(): void {
    if (this.#state === 'open' || this.#sessions.size > 0 || this.#queue.length > 0) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function definedOnly(options: Http2PoolOptions): Partial<typeof HTTP2_POOL_DEFAULTS> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(HTTP2_POOL_DEFAULTS) as Array<keyof typeof HTTP2_POOL_DEFAULTS>) {
    const value = options[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
