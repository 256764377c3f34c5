import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { UpstreamConnectError, connectTimeoutError, streamError } from './h2-errors';

/** HTTP/2's largest flow-control window (RFC 9113 §6.9.1). */
export const MAX_WINDOW = 2 ** 31 - 1;
/** The window every stream and connection starts with (RFC 9113 §6.9.2). */
const DEFAULT_WINDOW = 65_535;
/**
 * How long a closing session waits for the peer to close its side of the connection after ours
 * was ended; a peer that never does must not keep the socket (or the pool's close()) forever.
 */
const CLOSE_LINGER_MS = 5000;

/** What one session needs from the pool's options. */
export interface SessionOptions {
  readonly connectTimeoutMs: number;
  readonly maxConcurrentStreams: number;
  readonly initialStreamWindowSize: number;
  readonly initialConnectionWindowSize: number;
  readonly maxSessionMemoryMb: number;
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
  /** Options, or a provider read at each connect (certificates rotate; null while not ready). */
  readonly tls: tls.ConnectionOptions | (() => tls.ConnectionOptions | null) | null;
  readonly createConnection: ((origin: URL, options: http2.ClientSessionOptions) => Duplex) | null;
}

/** How a session tells its pool that something changed. */
export interface SessionEvents {
  /** Connected and the peer's first SETTINGS arrived: streams may open. */
  ready(session: H2Session): void;
  /** Never became ready. */
  connectFailed(session: H2Session, err: Error): void;
  /** A stream ended, or the peer changed its stream limit: maybe room for a waiting request. */
  changed(session: H2Session): void;
  /** Gone for good after being ready (or dropped by the pool while connecting); `err` when it died of one. */
  closed(session: H2Session, wasReady: boolean, err: Error | null): void;
}

type State = 'connecting' | 'ready' | 'draining' | 'closed';

/**
 * One HTTP/2 connection to an endpoint: connects (plain or TLS with ALPN h2), waits for the peer's
 * SETTINGS, counts its streams against the effective limit, closes itself when idle or when it has
 * served maxRequestsPerConnection streams, and stops taking streams on GOAWAY.
 */
export class H2Session {
  #state: State = 'connecting';
  #everReady = false;
  /** The pool gave up on it while it was still connecting: not a connect failure. */
  #abandoned = false;
  readonly #session: http2.ClientHttp2Session;
  readonly #socket: Duplex;
  #connectTimer: NodeJS.Timeout | null = null;
  #lingerTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  /** Streams open now. */
  #active = 0;
  /** Streams opened over the session's life. */
  #served = 0;
  /** What killed the session, when something did. */
  #failure: Error | null = null;
  /** The peer's GOAWAY, once it sent one. */
  #goaway: { readonly code: number; readonly lastStreamId: number } | null = null;

  constructor(
    readonly origin: URL,
    private readonly options: SessionOptions,
    private readonly events: SessionEvents,
  ) {
    const connectOptions: http2.ClientSessionOptions = {
      // The pool counts streams itself; this caps what nghttp2 lets through before SETTINGS.
      peerMaxConcurrentStreams: Math.min(options.maxConcurrentStreams, 100),
      maxSessionMemory: options.maxSessionMemoryMb,
      settings: {
        enablePush: false,
        initialWindowSize: Math.min(Math.max(options.initialStreamWindowSize, DEFAULT_WINDOW), MAX_WINDOW),
      },
    };
    // The session's own socket stays in reach: Node hides it once the session is closing.
    this.#socket = openSocket(origin, options, connectOptions);
    // The session reports socket errors itself; this one covers the socket after the session let go of it.
    this.#socket.on('error', () => undefined);
    connectOptions.createConnection = () => this.#socket;
    const session = http2.connect(origin, connectOptions);
    this.#session = session;
    session.on('error', (err: Error) => {
      this.#failure ??= err;
    });
    // 'frameError' is informational: the stream it concerns fails on its own.
    session.on('frameError', () => undefined);
    session.once('connect', () => this.#connected());
    session.once('remoteSettings', () => this.#settled());
    session.on('remoteSettings', () => {
      if (this.#state === 'ready') this.events.changed(this);
    });
    session.on('goaway', (code: number, lastStreamId: number) => {
      this.#goaway = { code, lastStreamId };
      this.#drain();
    });
    session.once('close', () => this.#closed());
    if (options.connectTimeoutMs > 0) {
      this.#connectTimer = setTimeout(() => session.destroy(connectTimeoutError(options.connectTimeoutMs)), options.connectTimeoutMs);
      this.#connectTimer.unref();
    }
  }

  #connected(): void {
    const session = this.#session;
    // ALPN is optional (prior knowledge over TLS is allowed), but a peer that chose HTTP/1.1 cannot speak h2.
    if (this.options.tls && typeof session.alpnProtocol === 'string' && session.alpnProtocol !== 'h2') {
      session.destroy(new UpstreamConnectError(`upstream chose ALPN ${session.alpnProtocol}, not h2`, 'SM_UPSTREAM_CONNECT_FAILED'));
      return;
    }
    const window = Math.min(this.options.initialConnectionWindowSize, MAX_WINDOW);
    if (window > DEFAULT_WINDOW) session.setLocalWindowSize(window);
  }

  #settled(): void {
    if (this.#state !== 'connecting') return;
    this.#clearConnectTimer();
    this.#state = 'ready';
    this.#everReady = true;
    this.#session.unref();
    this.#armIdle();
    this.events.ready(this);
  }

  get connecting(): boolean {
    return this.#state === 'connecting';
  }

  /** Ready and not draining: counts against maxConnections and may take streams when not full. */
  get accepting(): boolean {
    return this.#state === 'ready';
  }

  /** The connection is gone (destroyed), whatever the reason. */
  get gone(): boolean {
    return this.#session.destroyed;
  }

  get active(): number {
    return this.#active;
  }

  /** The configured limit, lowered by the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  get streamLimit(): number {
    const peer = this.#session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    return Math.min(this.options.maxConcurrentStreams, peer);
  }

  get hasRoom(): boolean {
    return this.#state === 'ready' && this.#active < this.streamLimit;
  }

  /**
   * Opens a stream; throws what `ClientHttp2Session.request` throws (a GOAWAY the pool has not
   * seen yet, bad headers). The session drains itself once it has served its quota.
   */
  request(headers: http2.OutgoingHttpHeaders, options: http2.ClientSessionRequestOptions): http2.ClientHttp2Stream {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.#session.request(headers, options);
    } catch (err) {
      if (this.#session.closed || this.#session.destroyed) this.#drain();
      throw err;
    }
    this.#active++;
    this.#served++;
    this.#clearIdle();
    if (this.#active === 1) this.#session.ref();
    stream.once('close', () => this.#streamClosed());
    const max = this.options.maxRequestsPerConnection;
    if (max > 0 && this.#served >= max) this.#drain();
    return stream;
  }

  /** The error a GOAWAY with an error code gives the streams it takes down; null without one. */
  goawayFailure(): Error | null {
    const g = this.#goaway;
    if (g === null || g.code === http2.constants.NGHTTP2_NO_ERROR) return null;
    return streamError(g.code, 'closed the connection (GOAWAY)');
  }

  /** The peer's GOAWAY said it never processed this stream, so it may be sent again. */
  unprocessed(streamId: number | undefined): boolean {
    return this.#goaway !== null && streamId !== undefined && streamId > this.#goaway.lastStreamId;
  }

  /** Stops taking streams; the session closes once those it carries have finished. */
  drain(): void {
    this.#drain();
  }

  /** Closes now, failing the streams it carries with `err`; while connecting this is no connect failure. */
  destroy(err?: Error): void {
    if (this.#state === 'connecting') this.#abandoned = true;
    this.#session.destroy(err);
    // A session already closing gracefully only waits for its socket: end that wait now.
    this.#socket.destroy();
  }

  #streamClosed(): void {
    this.#active--;
    if (this.#active === 0) {
      // An idle session must not keep the process alive; one carrying streams does.
      this.#session.unref();
      this.#armIdle();
      this.#closeIfDone();
    }
    this.events.changed(this);
  }

  #drain(): void {
    if (this.#state === 'draining' || this.#state === 'closed') return;
    const wasConnecting = this.#state === 'connecting';
    this.#state = 'draining';
    this.#clearIdle();
    if (wasConnecting) {
      this.#abandoned = true;
      this.#session.destroy();
      return;
    }
    this.#closeIfDone();
  }

  /**
   * A draining session ends once its streams have. Closing earlier would not wait for them: a
   * local GOAWAY refuses the streams whose HEADERS are still queued.
   */
  #closeIfDone(): void {
    if (this.#state !== 'draining' || this.#active > 0 || this.#lingerTimer !== null) return;
    if (!this.#session.closed) this.#session.close();
    this.#lingerTimer = setTimeout(() => this.#socket.destroy(), CLOSE_LINGER_MS);
    this.#lingerTimer.unref();
  }

  #armIdle(): void {
    if (this.options.idleTimeoutMs <= 0 || this.#state !== 'ready' || this.#active > 0) return;
    this.#clearIdle();
    this.#idleTimer = setTimeout(() => this.#drain(), this.options.idleTimeoutMs);
    this.#idleTimer.unref();
  }

  #clearIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  #clearConnectTimer(): void {
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
  }

  #closed(): void {
    this.#state = 'closed';
    this.#clearConnectTimer();
    this.#clearIdle();
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    if (!this.#everReady && !this.#abandoned) {
      const cause = this.#failure ?? new Error('upstream closed the connection before its SETTINGS');
      this.events.connectFailed(this, UpstreamConnectError.from(cause));
      return;
    }
    this.events.closed(this, this.#everReady, this.#failure);
  }
}

/** A TCP or TLS (ALPN h2) connection to the origin, or the test's own transport. */
function openSocket(origin: URL, options: SessionOptions, sessionOptions: http2.ClientSessionOptions): Duplex {
  if (options.createConnection) return options.createConnection(origin, sessionOptions);
  const host = origin.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80);
  if (options.tls === null) return net.connect({ host, port });
  const current = typeof options.tls === 'function' ? options.tls() : options.tls;
  if (current === null) {
    // A socket that fails at once, so that the session reports a connect failure the usual way.
    const failed = new net.Socket();
    process.nextTick(() => failed.destroy(new TlsNotReadyError()));
    return failed;
  }
  return tls.connect({ ...current, host, port, ALPNProtocols: ['h2'] });
}

/** The cluster's TLS waits for an SDS secret: the connection fails, as Envoy's does then. */
class TlsNotReadyError extends Error {
  readonly code = 'ERR_TLS_CONTEXT_NOT_READY';
  constructor() {
    super('upstream TLS context not ready (SDS secret missing)');
  }
}
