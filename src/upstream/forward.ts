import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ResponseTap } from '../compare/capture';
import { type DownstreamResponse, isHttp2Response, writeBody, writeHead } from '../http/downstream';
import { CONNECTION_SPECIFIC, type HeaderMap } from '../http/headers';
import type { UpstreamCluster } from './cluster-manager';
import { classifyUpstreamError } from './errors';
import type { Host } from './host';

/** How the primary exchange ended, for the connection manager to answer or log. */
export type PrimaryFailure = 'connect_failure' | 'reset' | 'timeout' | 'protocol_error' | 'downstream_reset';

/** What the connection manager hands the forwarder for one primary request. */
export interface PrimaryForward {
  readonly cluster: UpstreamCluster;
  readonly host: Host;
  readonly method: string;
  readonly path: string;
  readonly headers: HeaderMap;
  readonly body: Readable | null;
  /** The router's suppress_envoy_headers: no x-envoy-upstream-service-time on the response. */
  readonly suppressEnvoyHeaders: boolean;
  /** What the request came in on, for clusters with use_downstream_protocol_config. */
  readonly downstreamProtocol: 'HTTP/1.1' | 'HTTP/2';
  /** The request's trailers, read once its body has ended (HTTP/2 upstreams send them). */
  readonly requestTrailers: () => Record<string, string> | null;
  /** Envoy's route timeout (0: none), counted from the end of the downstream request. */
  readonly timeoutMs: number;
  /** The headers to send the client, from the upstream's raw header list (hop-by-hop out, route edits in). */
  readonly responseHeaders: (status: number, raw: readonly Buffer[]) => OutgoingHeaders;
  /** Called when the exchange fails before any response byte reached the client. */
  readonly localReply: (failure: PrimaryFailure) => void;
  /**
   * Sync-mode shadows: the response is held until this settles (it is bounded by the policies'
   * sync_timeout), then sent with the headers it yields added.
   */
  readonly syncWait: Promise<Record<string, string>> | null;
  /** A compared request: shown the upstream's response as it streams on to the client. */
  readonly tap?: ResponseTap | null;
  /** HTTP filters that rewrite the body (the compressor): asked once the response head is decided. */
  readonly responseBody?: (() => ResponseBodySink | null) | null;
}

/** Where the response body goes instead of the client when a filter rewrites it; it ends the response itself. */
export interface ResponseBodySink {
  /** false: stop reading the upstream until `onDrain` is called. */
  write(chunk: Buffer, onDrain: () => void): boolean;
  /** The upstream's body is over: the response ends once the sink has written it all, trailers last. */
  end(trailers: Record<string, string | string[]> | null): void;
}

/** Response headers as Node's writeHead takes them: a flat [name, value, …] list, or an object. */
export type OutgoingHeaders = string[] | HeaderMap;

/** A response waiting for sync shadows before it may go to the client. */
interface HeldResponse {
  readonly status: number;
  readonly headers: OutgoingHeaders;
  readonly chunks: Buffer[];
  ended: boolean;
  trailers: Record<string, string | string[]> | null;
}

class PrimaryAbort extends Error {
  constructor(readonly failure: PrimaryFailure) {
    super(`primary aborted: ${failure}`);
  }
}

/**
 * Streams one request to the primary upstream and its response back to the client, with
 * back-pressure both ways, Envoy's route timeout, and a local reply when nothing was sent yet.
 *
 * It speaks undici's own handler protocol (onConnect/onHeaders/onData/onComplete/onError): the
 * newer controller API goes through an adapter that parses every header block into an object,
 * which the proxy does not need.
 */
export class PrimaryExchange implements Dispatcher.DispatchHandler {
  #abortUpstream: ((err: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** When the route timeout fires (performance.now()), while it is armed. */
  #deadline = 0;
  /** Route timeout left when it was stopped for a held response (null: not stopped). */
  #timeoutLeft: number | null = null;
  #status = 0;
  #finished = false;
  #held: HeldResponse | null = null;
  /** An HTTP/2 response head not written yet (see onHeaders). */
  #head: { readonly status: number; readonly headers: OutgoingHeaders } | null = null;
  /** Set while the comparison still wants the response's bytes. */
  #tap: ResponseTap | null;
  #sink: ResponseBodySink | null = null;
  readonly #started = performance.now();
  readonly #onDrain = (): void => this.#resume?.();

  constructor(
    private readonly fwd: PrimaryForward,
    private readonly res: DownstreamResponse,
  ) {
    this.#tap = fwd.tap ?? null;
  }

  start(): void {
    const { fwd } = this;
    fwd.host.active++;
    fwd.host.counters.rqTotal++;
    fwd.cluster.active++;
    fwd.cluster.stats.rqTotal.inc();
    fwd.cluster.stats.rqActive.inc();
    fwd.host.pool.dispatch(
      { path: fwd.path, method: fwd.method, headers: fwd.headers as Record<string, string | string[]>, body: fwd.body, blocking: false,
        requestTrailers: fwd.requestTrailers, downstreamProtocol: fwd.downstreamProtocol } as Dispatcher.DispatchOptions,
      this,
    );
  }

  /** The downstream request is complete: the route timeout starts now, as in Envoy. */
  requestComplete(): void {
    if (this.fwd.timeoutMs <= 0 || this.#finished) return;
    // A response held for sync shadows does not count against the route timeout: armed on release.
    if (this.#held !== null) this.#timeoutLeft = this.fwd.timeoutMs;
    else this.#armTimeout(this.fwd.timeoutMs);
  }

  #armTimeout(ms: number): void {
    this.#deadline = performance.now() + ms;
    this.#timer = setTimeout(() => this.#abort(new PrimaryAbort('timeout')), ms);
  }

  /** The client went away: reset the upstream request too. */
  downstreamReset(): void {
    this.#abort(new PrimaryAbort('downstream_reset'));
  }

  // implements Dispatcher.DispatchHandler (undici's native protocol)
  onConnect(abort: (err?: Error) => void): void {
    this.#abortUpstream = abort;
    if (this.#finished) abort(new PrimaryAbort('downstream_reset'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200 || this.#finished) return true;
    this.#status = statusCode;
    this.#resume = resume;
    this.#tap?.head(statusCode, rawHeaders);
    const out = this.fwd.responseHeaders(statusCode, rawHeaders);
    if (!this.fwd.suppressEnvoyHeaders) addHeader(out, 'x-envoy-upstream-service-time', String(Math.round(performance.now() - this.#started)));
    this.#sink = this.fwd.responseBody?.() ?? null;
    if (this.fwd.syncWait === null) {
      if (isHttp2Response(this.res)) {
        // Held until the next event: a response that ends right away (gRPC's Trailers-Only)
        // must leave as one HEADERS frame that ends the stream.
        this.#head = { status: statusCode, headers: out };
        queueMicrotask(() => this.#flushHead());
      } else this.#writeHead(statusCode, out);
      return true;
    }
    // Hold the response (and stop reading it) until the sync shadows are done.
    const held: HeldResponse = { status: statusCode, headers: out, chunks: [], ended: false, trailers: null };
    this.#held = held;
    // The hold is the sync shadows' time (bounded by sync_timeout), not the primary's: a slow
    // shadow must not turn the primary's answer into a 504. The route timeout stops meanwhile.
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
      this.#timeoutLeft = Math.max(0, this.#deadline - performance.now());
    }
    void this.fwd.syncWait.then((added) => {
      if (this.#finished) return;
      this.#held = null;
      if (this.#timeoutLeft !== null && !held.ended) this.#armTimeout(this.#timeoutLeft);
      this.#timeoutLeft = null;
      for (const name of Object.keys(added)) addHeader(held.headers, name, added[name]!);
      this.#writeHead(held.status, held.headers);
      for (const c of held.chunks) if (this.#sink === null) writeBody(this.res, c); else this.#sink.write(c, this.#onDrain);
      if (held.ended) this.#complete(held.trailers);
      else resume();
    });
    return false;
  }

  onData(chunk: Buffer): boolean {
    if (this.#finished) return true;
    if (this.#tap !== null && !this.#tap.data(chunk)) this.#tap = null;
    this.#flushHead();
    if (this.#held !== null) {
      this.#held.chunks.push(chunk);
      return false;
    }
    if (this.#sink !== null) return this.#sink.write(chunk, this.#onDrain);
    if (writeBody(this.res, chunk)) return true;
    this.res.once('drain', this.#onDrain);
    return false;
  }

  // undici types raw trailers as strings; it hands Buffers, as the HTTP/2 pool does.
  onComplete(trailers: string[] | null): void {
    if (this.#finished) return;
    this.#tap?.end();
    const t = trailers && trailers.length > 0 ? trailerMap(trailers) : null;
    if (this.#held !== null) {
      this.#held.ended = true;
      this.#held.trailers = t;
      return;
    }
    const head = this.#head;
    if (head !== null && t === null && this.#sink === null && isHttp2Response(this.res)) {
      // Nothing but headers: set, not written, so that end() sends them with END_STREAM.
      this.#head = null;
      setHeaders(this.res, head.headers);
      this.res.statusCode = head.status;
    } else this.#flushHead();
    this.#complete(t);
  }

  /** The response head held for a possible Trailers-Only answer goes out now. */
  #flushHead(): void {
    const head = this.#head;
    if (head === null || this.#finished) return;
    this.#head = null;
    this.#writeHead(head.status, head.headers);
  }

  /** A head Node refuses to write (a header HTTP/2 forbids, an invalid value) fails the exchange as a protocol error. */
  #writeHead(status: number, headers: OutgoingHeaders): void {
    try {
      writeHead(this.res, status, headers);
    } catch {
      this.#abort(new PrimaryAbort('protocol_error'));
    }
  }

  onError(err: Error): void {
    if (this.#finished) return;
    this.#fail(err instanceof PrimaryAbort ? err.failure : classifyUpstreamError(err));
  }

  #complete(trailers: Record<string, string | string[]> | null = null): void {
    try {
      if (this.#sink !== null) this.#sink.end(trailers);
      else {
        if (trailers !== null) this.res.addTrailers(trailers);
        this.res.end();
      }
    } catch {
      // Trailers Node refuses to write (an invalid name or value): the client's stream is reset.
      this.res.destroy();
    }
    this.#finish();
    this.fwd.cluster.stats.response(this.#status);
    this.fwd.host.counters[this.#status >= 500 ? 'rqError' : 'rqSuccess']++;
  }

  #abort(reason: PrimaryAbort): void {
    if (this.#finished) return;
    this.#abortUpstream?.(reason);
    // An upload still coming stops; a request already read is left alone (on HTTP/2 it is the
    // stream itself, and destroying it would reset the local reply that follows).
    if (this.fwd.body && !this.fwd.body.readableEnded) this.fwd.body.destroy();
    this.#fail(reason.failure);
  }

  #fail(failure: PrimaryFailure): void {
    // Aborting undici reports the error back through onError synchronously: count it once.
    if (this.#finished) return;
    this.#tap?.fail(failure === 'timeout' ? 'timeout' : 'error');
    const { cluster, host } = this.fwd;
    host.counters.rqError++;
    if (failure === 'timeout') {
      cluster.stats.rqTimeout.inc();
      host.counters.rqTimeout++;
    } else if (failure !== 'connect_failure') {
      cluster.stats.rqReset.inc();
    }
    this.#finish();
    if (failure === 'downstream_reset') return;
    if (!this.res.headersSent) this.fwd.localReply(failure);
    else this.res.destroy(); // The client already has part of a response: reset it, as Envoy does.
  }

  #finish(): void {
    this.#finished = true;
    if (this.#timer) clearTimeout(this.#timer);
    const { cluster, host } = this.fwd;
    host.active--;
    cluster.active--;
    cluster.stats.rqActive.dec();
    cluster.stats.rqTime.observe(performance.now() - this.#started);
  }
}

/** Adds a header to either form, replacing it in the object form. */
function addHeader(headers: OutgoingHeaders, name: string, value: string): void {
  if (Array.isArray(headers)) headers.push(name, value);
  else headers[name] = value;
}

/** Trailers from a raw [name, value, …] list; connection-specific names never pass (HTTP/2 forbids them). */
function trailerMap(raw: ReadonlyArray<Buffer | string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]!).toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
    const value = latin1(raw[i + 1]!);
    const prior = out[name];
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  return out;
}

/** Response headers set on the response (not written), from either form. */
function setHeaders(res: DownstreamResponse, headers: OutgoingHeaders): void {
  if (Array.isArray(headers)) {
    const grouped: Record<string, string[]> = {};
    for (let i = 0; i < headers.length; i += 2) (grouped[headers[i]!.toLowerCase()] ??= []).push(headers[i + 1]!);
    for (const name of Object.keys(grouped)) res.setHeader(name, grouped[name]!.length === 1 ? grouped[name]![0]! : grouped[name]!);
    return;
  }
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (v !== undefined) res.setHeader(name, v);
  }
}

function latin1(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}
