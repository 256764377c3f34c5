import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { classifyUpstreamError } from '../upstream/errors';
import type { Host } from '../upstream/host';
import { reportFailure } from '../upstream/outlier/report';
import { Deadline, type DeadlineOwner } from '../util/deadline-wheel';
import { Attempt, type AttemptOwner } from './attempt';
import type { BufferHolder, ShadowBufferBudget } from './buffer-budget';
import type { ShadowOptions, ShadowRequest, ShadowResult, ShadowStream } from './writer';

// One shadow in flight (ShadowExchange) and each try of it on a host (Attempt): the body fed as it
// arrives, the response discarded or sampled for afterMirror, retries, timeouts and bounds, and
// every ending counted once.

/**
 * Response body bytes a shadow reads past what it keeps, so that a short response leaves its
 * keep-alive connection reusable. Past it the connection is closed: reading a large shadow
 * response whole would cost the event loop the primary's requests run on.
 */
export const DEFAULT_RESPONSE_DRAIN_BYTES = 64 * 1024;

/** What a shadow that got no response reports to onDone. */
export const FAILED: ShadowResult = { ok: false, status: 0, headers: {}, body: Buffer.alloc(0), truncated: false, durationMs: 0 };

/** `compare_timeout`: the comparison gave up waiting for the response (compare.timeout). */
type AbortReason = 'timeout' | 'compare_timeout' | 'body_cap' | 'total_body_cap' | 'body_too_large' | 'client_aborted';

/** Who counts shadows in flight (the writer): hears of each one's end, without a closure per shadow. */
export interface InFlightSlots {
  shadowEnded(cluster: string): void;
}

class ShadowAbort extends Error {
  constructor(readonly reason: AbortReason) {
    super(`shadow aborted: ${reason}`);
  }
}

/**
 * One shadow in flight: feeds its body, discards (or, for afterMirror, samples) its response,
 * retries when its policy says so, and counts how it ended.
 */
export class ShadowExchange implements ShadowStream, BufferHolder, AttemptOwner, DeadlineOwner {
  #body: Readable | null;
  /** The whole body, kept only when a retry may need to send it again. */
  #copy: Buffer[] | null;
  #copyBytes = 0;
  #bodyBytes = 0;
  #bodyEnded = false;
  #trailers: Record<string, string> | null = null;
  #attempt: Attempt | null = null;
  #attemptsLeft: number;
  #host: Host;
  /** The route timeout, on the shared wheel; null when the route has none. */
  readonly #timeout: Deadline | null;
  #done = false;
  readonly #started = performance.now();

  constructor(
    private readonly request: ShadowRequest,
    host: Host,
    private readonly maxBuffered: number,
    /** Told once when the shadow ends, so that its in-flight slot is given back. */
    private readonly slots: InFlightSlots,
    /** The bound on body bytes all shadows hold together (null: none). */
    private readonly budget: ShadowBufferBudget | null = null,
    /** Response body bytes read (and discarded) past the kept `captureBodyBytes` before the connection is closed. */
    private readonly responseDrainBytes: number = DEFAULT_RESPONSE_DRAIN_BYTES,
  ) {
    this.#host = host;
    this.#attemptsLeft = request.options.retry?.count ?? 0;
    this.#copy = this.#attemptsLeft > 0 && request.hasBody ? [] : null;
    this.#body = request.hasBody ? newBody() : null;
    this.#timeout = request.timeoutMs > 0 ? new Deadline(this) : null;
    // A compared shadow is not left open once its comparison has given up on it: on a route
    // without a timeout, a peer that sends its headers and then nothing would hold an in-flight
    // slot for ever.
    request.options.capture?.onGiveUp(() => this.#abort(new ShadowAbort('compare_timeout')));
  }

  dispatch(): void {
    const { request } = this;
    request.stats.sent();
    request.stats.active.inc();
    request.cluster.stats.rqActive.inc();
    this.#send();
  }

  #send(): void {
    const { request } = this;
    const o = request.options;
    request.cluster.stats.rqTotal.inc();
    this.#host.active++;
    this.#host.counters.rqTotal++;
    // A compared response is read whole (its capture bounds it); any other past the drain budget is cut.
    this.#attempt = new Attempt(this, this.#host, o, o.capture ? Infinity : o.captureBodyBytes + this.responseDrainBytes);
    this.#host.pool.dispatch(
      {
        path: request.path,
        method: request.method,
        headers: request.headers as Record<string, string | string[]>,
        body: this.#body,
        // Shadows are never retried by undici and never follow redirects; our own retry is explicit.
        idempotent: false,
        blocking: false,
        // The read timeout is the attempt's own timer: undici's headers/body timeouts tick on a
        // coarse (~1 s) clock, so a 200 ms read timeout would fire after about a second.
        headersTimeout: 0,
        bodyTimeout: 0,
        // Read by the HTTP/2 pool once the body has ended (undici's HTTP/1 cannot send trailers).
        requestTrailers: () => this.#trailers,
        downstreamProtocol: request.downstreamProtocol,
      } as Dispatcher.DispatchOptions,
      this.#attempt,
    );
  }

  // implements ShadowStream
  write(chunk: Buffer): void {
    const body = this.#body;
    if (this.#done || body === null) return;
    this.#bodyBytes += chunk.length;
    const max = this.request.options.maxBodyBytes;
    if (max > 0 && this.#bodyBytes > max) return this.#abort(new ShadowAbort('body_too_large'));
    if (this.#copy) {
      // A retry copy is bounded too: past the buffer cap the shadow simply loses its retries.
      if (this.#bodyBytes > this.maxBuffered) {
        this.#copy = null;
        this.#copyBytes = 0;
      } else {
        this.#copy.push(chunk);
        this.#copyBytes += chunk.length;
      }
    }
    body.push(chunk);
    // readableLength is what undici has not taken yet: the shadow upstream is behind the client.
    if (body.readableLength > this.maxBuffered) return this.#abort(new ShadowAbort('body_cap'));
    if (this.budget !== null && !this.budget.update(this, this.heldBytes())) this.#abort(new ShadowAbort('total_body_cap'));
  }

  // implements BufferHolder
  heldBytes(): number {
    return (this.#body?.readableLength ?? 0) + this.#copyBytes;
  }

  end(trailers: Record<string, string> | null = null): void {
    this.#bodyEnded = true;
    this.#trailers = trailers;
    if (this.#done) return;
    this.#body?.push(null);
    // The route timeout a shadow inherits counts, as the primary's (and Envoy's), from the end of the request.
    if (this.#timeout !== null && !this.#timeout.armed) this.#timeout.arm(this.request.timeoutMs);
  }

  // implements DeadlineOwner: the route timeout passed.
  onDeadline(): void {
    this.#abort(new ShadowAbort('timeout'));
  }

  abort(): void {
    this.#abort(new ShadowAbort('client_aborted'));
  }

  /** The body was taken whole by the connection (for the send timeout). */
  bodyConsumed(): boolean {
    return this.#body === null || this.#body.readableEnded;
  }

  // Called by the attempt.
  attemptEnded(attempt: Attempt, status: number, err: Error | null): void {
    if (this.#done || attempt !== this.#attempt) return;
    this.#host.active--;
    if (err !== null) reportFailure(attempt.host, isTimeout(err) ? 'timeout' : classifyUpstreamError(err), status !== 0);
    const retry = this.request.options.retry;
    const reason = err === null ? (status >= 500 ? '5xx' : null) : classifyUpstreamError(err);
    const retriable = retry !== null && reason !== null && this.#attemptsLeft > 0 && this.#canResend() && (
      (reason === '5xx' && retry.on5xx) || (reason === 'connect_failure' && retry.onConnectFailure) || (reason === 'reset' && retry.onReset));
    if (retriable) {
      this.#attemptsLeft--;
      this.request.stats.retried();
      this.#host = this.request.cluster.pick() ?? this.#host;
      this.request.stats.picked?.(this.#host.addressPort);
      this.#body = this.#copy ? newBody(this.#copy, this.#bodyEnded) : null;
      this.request.options.capture?.restart();
      this.#send();
      return;
    }
    this.#finish();
    const { stats, cluster } = this.request;
    const capture = this.request.options.capture;
    if (err === null) {
      capture?.end();
      stats.succeeded(status);
      if (attempt.cut) stats.responseTruncated();
      cluster.stats.response(status);
      this.#host.counters[status >= 500 ? 'rqError' : 'rqSuccess']++;
      this.request.options.onDone?.(attempt.result(performance.now() - this.#started));
      return;
    }
    this.#host.counters.rqError++;
    capture?.fail(isTimeout(err) ? 'timeout' : 'error');
    if (isTimeout(err)) {
      stats.timedOut();
      cluster.stats.rqTimeout.inc();
      this.#host.counters.rqTimeout++;
    } else {
      stats.failed(classifyUpstreamError(err));
    }
    this.request.options.onDone?.(FAILED);
  }

  /** A retry can send the body again only if all of it was kept and the client has sent it all. */
  #canResend(): boolean {
    return this.#body === null || (this.#copy !== null && this.#bodyEnded);
  }

  #abort(reason: ShadowAbort): void {
    if (this.#done) return;
    this.#finish();
    if (this.#attempt) this.#host.active--;
    // A timeout is the host's doing (outlier detection hears of it); the other aborts are ours or the client's.
    if (reason.reason === 'timeout' && this.#attempt) reportFailure(this.#attempt.host, 'timeout', this.#attempt.responseStarted);
    const { stats, cluster } = this.request;
    this.#host.counters.rqError++;
    if (reason.reason === 'timeout' || reason.reason === 'compare_timeout') {
      stats.timedOut();
      cluster.stats.rqTimeout.inc();
      this.#host.counters.rqTimeout++;
    } else if (reason.reason === 'client_aborted') {
      stats.failed('client_aborted');
    } else {
      stats.dropped(reason.reason);
    }
    cluster.stats.rqReset.inc();
    const r = reason.reason;
    this.request.options.capture?.fail(r === 'timeout' || r === 'compare_timeout' ? 'timeout' : r === 'body_cap' || r === 'total_body_cap' ? 'dropped' : 'error');
    this.#attempt?.abort(reason);
    this.#body?.destroy(reason);
    this.request.options.onDone?.(FAILED);
  }

  /** Attempt-level timeouts (connect, send) end the whole shadow the same way the route timeout does. */
  timeout(): void {
    this.#abort(new ShadowAbort('timeout'));
  }

  #finish(): void {
    this.#done = true;
    this.#copy = null;
    this.#copyBytes = 0;
    this.budget?.release(this);
    this.#timeout?.disarm();
    const { stats, cluster } = this.request;
    stats.active.dec();
    cluster.stats.rqActive.dec();
    stats.rqTime.observe(performance.now() - this.#started);
    this.slots.shadowEnded(this.request.cluster.name);
  }
}

/** A body stream that chunks are pushed into as they arrive; undici pulls from it. */
function newBody(chunks?: readonly Buffer[], ended = false): Readable {
  const body = new Readable({ read() {} });
  body.on('error', () => undefined);
  if (chunks) for (const c of chunks) body.push(c);
  if (ended) body.push(null);
  return body;
}



function isTimeout(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
}
