import * as http2 from 'node:http2';
import type { HttpFilterChain } from '../config/model';
import type { StreamInfo } from '../http/stream-info';
import type { CodecChain, HandedSocket } from './http1-codec';

type Hcm = HttpFilterChain['hcm'];

/** nghttp2 refuses new streams past this much session memory (Node's default is 10 MB). */
const MIN_SESSION_MEMORY_MB = 32;
const STREAM_TIMEOUT_BODY = 'stream timeout';
/** Envoy's overload.premature_reset_total_stream_count and premature_reset_min_stream_lifetime_seconds. */
const PREMATURE_RESET_MIN_STREAMS = 500;
const PREMATURE_RESET_MS = 1000;
const TOO_MANY_HEADERS = 'Request Header Fields Too Large';

/**
 * The HTTP/2 codec of one filter chain: a node:http2 server that never listens itself, fed
 * sockets (plaintext with the h2 preface, or TLS that negotiated h2) by the listener. Each stream
 * reaches the chain's connection manager as a request/response pair (Node's compatibility API),
 * its headers made to look like HTTP/1's: pseudo headers out, `:authority` as Host.
 *
 * Envoy's per-connection rules map onto the session: idle_timeout (no stream open for that long),
 * max_connection_duration and max_requests_per_connection end it with a GOAWAY after which open
 * streams finish; stream_idle_timeout (or the route's idle_timeout) ends a stream with a 408 when
 * nothing was sent yet, else with a reset.
 */
export class Http2Codec {
  readonly #server: http2.Http2Server;
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #info = new WeakMap<http2.ServerHttp2Session, StreamInfo>();
  /** The stream info of the socket being handed over, for the session it creates synchronously. */
  #handing: StreamInfo | null = null;

  constructor(private readonly current: () => CodecChain) {
    const hcm = current().chain.hcm;
    const server = http2.createServer({
      settings: localSettings(hcm),
      maxSessionMemory: Math.max(MIN_SESSION_MEMORY_MB, Math.ceil(hcm.http2.initialConnectionWindowSize / (1024 * 1024)) * 2),
      // Our own check answers past the limit (431), so Node must let one more through.
      maxHeaderListPairs: hcm.commonHttpProtocolOptions.maxHeadersCount + 5,
    });
    this.#server = server;
    server.on('session', (session: http2.ServerHttp2Session) => this.#onSession(session));
    server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => this.#onRequest(req, res));
    // A peer that breaks the protocol loses its session; the process carries on.
    server.on('sessionError', () => this.current().connectionManager.stats.cxProtocolError.inc());
    // Timeouts are ours (below): without a listener Node would destroy the stream itself.
    server.on('timeout', () => undefined);
  }

  serve(handed: HandedSocket): void {
    const cm = this.current().connectionManager;
    cm.stats.cxTotal.inc();
    cm.stats.cxActive.inc();
    cm.stats.cxHttp2Total.inc();
    handed.socket.once('close', () => cm.stats.cxActive.dec());
    this.#handing = handed.info;
    try {
      this.#server.emit('connection', handed.socket);
    } finally {
      this.#handing = null;
    }
    // A socket whose first bytes were looked at is paused with them put back: the session reads on now.
    handed.socket.resume();
  }

  applySettings(): void {
    const settings = localSettings(this.current().chain.hcm);
    for (const s of this.#sessions) if (!s.destroyed && !s.closed) s.settings(settings);
  }

  /** GOAWAY to every session: open streams finish, no new ones start. */
  drain(): void {
    for (const s of this.#sessions) if (!s.closed) s.close();
  }

  close(): void {
    for (const s of this.#sessions) s.destroy();
    this.#server.close();
  }

  #onSession(session: http2.ServerHttp2Session): void {
    this.#sessions.add(session);
    if (this.#handing) this.#info.set(session, this.#handing);
    const hcm = this.current().chain.hcm;
    const o = hcm.commonHttpProtocolOptions;
    session.on('error', () => undefined);
    session.once('connect', () => {
      // The connection window is not a SETTINGS value: it grows by a WINDOW_UPDATE.
      if (!session.destroyed) session.setLocalWindowSize(hcm.http2.initialConnectionWindowSize);
    });
    let open = 0;
    let served = 0;
    let premature = 0;
    let idle: NodeJS.Timeout | null = null;
    const armIdle = (): void => {
      if (o.idleTimeoutMs <= 0) return;
      idle = setTimeout(() => {
        this.current().connectionManager.stats.cxIdleTimeout.inc();
        session.close();
      }, o.idleTimeoutMs);
      idle.unref();
    };
    armIdle();
    const duration = o.maxConnectionDurationMs > 0
      ? setTimeout(() => {
          this.current().connectionManager.stats.cxMaxDurationReached.inc();
          session.close();
        }, o.maxConnectionDurationMs)
      : null;
    duration?.unref();
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      open++;
      served++;
      if (idle) clearTimeout(idle);
      idle = null;
      const opened = performance.now();
      stream.once('close', () => {
        // Envoy's premature-reset guard (CVE-2023-44487): a client that resets most of its streams
        // within a second of opening them loses the connection.
        if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !stream.sentHeaders && performance.now() - opened < PREMATURE_RESET_MS) {
          premature++;
          if (served >= PREMATURE_RESET_MIN_STREAMS && premature * 2 > served) {
            this.current().connectionManager.stats.cxProtocolError.inc();
            session.destroy();
            return;
          }
        }
        if (--open === 0 && !session.closed) armIdle();
      });
      if (o.maxRequestsPerConnection > 0 && served === o.maxRequestsPerConnection) {
        this.current().connectionManager.stats.cxMaxRequestsReached.inc();
        session.close();
      }
    });
    session.once('close', () => {
      this.#sessions.delete(session);
      if (idle) clearTimeout(idle);
      if (duration) clearTimeout(duration);
    });
  }

  #onRequest(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
    // A stream the client already reset (rapid reset): nothing to answer, nothing to start upstream.
    if (req.stream.destroyed || req.stream.closed) return;
    const { chain, connectionManager: cm } = this.current();
    const hcm = chain.hcm;
    const info = this.#info.get(req.stream.session as http2.ServerHttp2Session) ?? PLAIN_HTTP2;
    asHttp1Headers(req.rawHeaders);
    const stream = req.stream;
    stream.setTimeout(hcm.streamIdleTimeoutMs);
    stream.on('timeout', () => {
      cm.stats.rqIdleTimeout.inc();
      if (!res.headersSent && !stream.destroyed) {
        res.writeHead(408, { 'content-type': 'text/plain', 'content-length': STREAM_TIMEOUT_BODY.length });
        res.end(STREAM_TIMEOUT_BODY);
        // What the client still sends is not read: the stream ends here.
        req.resume();
      } else stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    if (req.rawHeaders.length / 2 > hcm.commonHttpProtocolOptions.maxHeadersCount) {
      cm.stats.cxProtocolError.inc();
      res.writeHead(431, { 'content-type': 'text/plain', 'content-length': TOO_MANY_HEADERS.length });
      res.end(TOO_MANY_HEADERS);
      req.resume();
      return;
    }
    cm.handle(req, res, info);
  }
}

const PLAIN_HTTP2: StreamInfo = { protocol: 'HTTP/2', scheme: 'http', tls: null };

function localSettings(hcm: Hcm): http2.Settings {
  return {
    maxConcurrentStreams: hcm.http2.maxConcurrentStreams,
    initialWindowSize: hcm.http2.initialStreamWindowSize,
    maxHeaderListSize: hcm.maxRequestHeadersKb * 1024,
  };
}

/**
 * Pseudo headers out of the raw list, `:authority` in as Host (RFC 9113 §8.3.1: it takes the
 * place of Host, and wins over one the client also sent), so that everything above the codec
 * reads an HTTP/2 request as it reads an HTTP/1.1 one. The list is Node's own, edited in place.
 */
export function asHttp1Headers(raw: string[]): void {
  let authority: string | null = null;
  let w = 0;
  for (let r = 0; r < raw.length; r += 2) {
    const name = raw[r]!;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = raw[r + 1]!;
      continue;
    }
    if (authority !== null && name === 'host') continue;
    raw[w++] = name;
    raw[w++] = raw[r + 1]!;
  }
  raw.length = w;
  if (authority !== null) {
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i] === 'host') {
        raw.splice(i, 2);
        i -= 2;
      }
    }
    raw.push('host', authority);
  }
}
