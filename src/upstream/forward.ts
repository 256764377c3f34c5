import type { Dispatcher } from 'undici';
import type { ResponseTap } from '../compare/capture';
import { type DownstreamResponse, isHttp2Response, writeBody, writeHead } from '../http/downstream';
import { type AttemptOwner, AttemptCancelled, UpstreamAttempt, attemptFailure } from './attempt';
import { BodyReplay } from './body-replay';
import { classifyUpstreamError } from './errors';
import type { ForwardFailure, OutgoingHeaders, PrimaryFailure, PrimaryForward, ResponseBodySink } from './forward-types';
import type { Host } from './host';
import { reportFailure, reportResponseHead } from './outlier/report';
import { addHeader, responseView, setHeaders, trailerMap } from './response-head';
import { Deadline, type DeadlineOwner } from '../util/deadline-wheel';

export type { ForwardFailure, OutgoingHeaders, PrimaryFailure, PrimaryForward, ResponseBodySink } from './forward-types';

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

const CANCELLED_FOR_RETRY = new AttemptCancelled();
const OVERLOADED = { 'x-envoy-overloaded': 'true' };

/**
 * Streams one request to the primary upstream and its response back to the client, with
 * back-pressure both ways, Envoy's route timeout, and a local reply when nothing was sent yet.
 * With a retry plan, each upstream request is an attempt (attempt.ts): one that fails, or whose
 * response the retry state calls retriable, is dropped and another follows after the back-off,
 * until a response is sent on; from then on the exchange is that attempt's, as in Envoy.
 */
export class PrimaryExchange implements AttemptOwner, DeadlineOwner {
  #resume: (() => void) | null = null;
  /** The route timeout, on the shared wheel; null when the route has none. */
  readonly #timeout: Deadline | null;
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
  /** The attempt in flight; null between attempts (a retry's back-off) and once finished. */
  #attempt: UpstreamAttempt | null = null;
  /** The host of the latest attempt. */
  #host: Host;
  #attempts = 0;
  /** A response was chosen to go to the client: no more retries. */
  #committed = false;
  #backoff: NodeJS.Timeout | null = null;
  #replay: BodyReplay | null = null;
  /** When the downstream request completed (performance.now()); 0 while it has not. */
  #requestEnded = 0;
  readonly #started = performance.now();
  readonly #onDrain = (): void => this.#resume?.();

  constructor(
    private readonly fwd: PrimaryForward,
    private readonly res: DownstreamResponse,
  ) {
    this.#tap = fwd.tap ?? null;
    this.#host = fwd.host;
    this.#timeout = fwd.timeoutMs > 0 ? new Deadline(this) : null;
  }

  start(): void {
    const { fwd } = this;
    // The body is kept for replay only while a retry could use it.
    if (fwd.body !== null && fwd.retry?.state?.enabled) this.#replay = new BodyReplay(fwd.body, fwd.retry.bufferLimitBytes, () => this.#bodyOverflowed());
    this.#startAttempt(fwd.host);
  }

  #startAttempt(host: Host): void {
    const { fwd } = this;
    const attempt = new UpstreamAttempt(this, host);
    this.#attempt = attempt;
    this.#host = host;
    this.#attempts++;
    fwd.onAttempt?.(host);
    host.active++;
    host.counters.rqTotal++;
    fwd.cluster.active++;
    fwd.cluster.stats.rqTotal.inc();
    fwd.cluster.stats.rqActive.inc();
    fwd.retry?.state?.attempted(host);
    const body = this.#replay !== null ? this.#replay.stream() : fwd.body;
    host.pool.dispatch(
      { path: fwd.path, method: fwd.method, headers: fwd.headers as Record<string, string | string[]>, body, blocking: false,
        requestTrailers: fwd.requestTrailers, downstreamProtocol: fwd.downstreamProtocol } as Dispatcher.DispatchOptions,
      attempt,
    );
    if (this.#requestEnded > 0) this.#armAttemptTimers(attempt);
  }

  #armAttemptTimers(attempt: UpstreamAttempt): void {
    const plan = this.fwd.retry;
    if (plan && this.#attempt === attempt) attempt.armTimers(this.#committed ? 0 : plan.perTryTimeoutMs, plan.perTryIdleTimeoutMs);
  }

  /** The downstream request is complete: the route timeout (and per-try timeouts) start now, as in Envoy. */
  requestComplete(): void {
    if (this.#finished) return;
    this.#requestEnded = performance.now();
    if (this.#attempt !== null) this.#armAttemptTimers(this.#attempt);
    if (this.fwd.timeoutMs <= 0) return;
    // A response held for sync shadows does not count against the route timeout: armed on release.
    if (this.#held !== null) this.#timeoutLeft = this.fwd.timeoutMs;
    else this.#armTimeout(this.fwd.timeoutMs);
  }

  #armTimeout(ms: number): void {
    this.#timeout?.arm(ms);
  }

  // implements DeadlineOwner: the route timeout passed.
  onDeadline(): void {
    this.#abort(new PrimaryAbort('timeout'));
  }

  /** The client went away: reset the upstream request too. */
  downstreamReset(): void {
    // Called at every response's close: an exchange already over builds no Error (and no stack).
    if (this.#finished) return;
    this.#abort(new PrimaryAbort('downstream_reset'));
  }

  // implements AttemptOwner
  attemptHeaders(attempt: UpstreamAttempt, statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200 || this.#finished || attempt !== this.#attempt) return true;
    // Every attempt's answer counts for its host's outlier detection, the retried ones too.
    reportResponseHead(attempt.host, statusCode, rawHeaders);
    const state = this.fwd.retry?.state;
    if (state && !this.#committed) {
      const verdict = state.onResponse(responseView(statusCode, rawHeaders));
      if (verdict.retry) {
        this.fwd.cluster.stats.retry.retriedResponse(statusCode);
        this.#retry(attempt, verdict.delayMs, false);
        return true;
      }
    }
    this.#commit(attempt);
    this.#status = statusCode;
    this.#resume = resume;
    this.#tap?.head(statusCode, rawHeaders);
    const out = this.fwd.responseHeaders(statusCode, rawHeaders);
    if (!this.fwd.suppressEnvoyHeaders) addHeader(out, 'x-envoy-upstream-service-time', String(Math.round(performance.now() - this.#started)));
    this.#sink = this.fwd.responseBody?.() ?? null;
    if (this.fwd.retry?.attemptCountInResponse) addHeader(out, 'x-envoy-attempt-count', String(this.#attempts));
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
    if (this.#timeout?.armed) {
      this.#timeoutLeft = this.#timeout.remainingMs();
      this.#timeout.disarm();
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

  attemptData(attempt: UpstreamAttempt, chunk: Buffer): boolean {
    if (this.#finished || attempt !== this.#attempt) return true;
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

  attemptComplete(attempt: UpstreamAttempt, trailers: string[] | null): void {
    if (this.#finished || attempt !== this.#attempt) return;
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

  attemptError(attempt: UpstreamAttempt, err: Error): void {
    if (this.#finished || attempt !== this.#attempt) return;
    if (err instanceof PrimaryAbort) {
      this.#fail(err.failure);
      return;
    }
    const failure = classifyUpstreamError(err);
    reportFailure(attempt.host, failure, this.#committed);
    const state = this.fwd.retry?.state;
    if (state && !this.#committed && !this.res.headersSent) {
      const verdict = state.onFailure(attemptFailure(err, failure));
      if (verdict.retry) {
        if (failure !== 'connect_failure') this.fwd.cluster.stats.rqReset.inc();
        this.#retry(attempt, verdict.delayMs, false);
        return;
      }
    }
    this.#fail(failure, false, err);
  }

  attemptTimedOut(attempt: UpstreamAttempt, idle: boolean): void {
    if (this.#finished || attempt !== this.#attempt) return;
    const stats = this.fwd.cluster.stats.retry;
    (idle ? stats.perTryIdleTimeout : stats.perTryTimeout).inc();
    attempt.host.counters.rqTimeout++;
    reportFailure(attempt.host, 'timeout', this.#committed);
    if (this.#committed) {
      // Only the idle timeout outlives the response's start: the client's stream is reset.
      this.#abort(new PrimaryAbort('timeout'), true);
      return;
    }
    const verdict = this.fwd.retry?.state?.onFailure('per_try_timeout');
    if (verdict?.retry) {
      this.#retry(attempt, verdict.delayMs, true);
      return;
    }
    this.#abort(new PrimaryAbort('timeout'), true);
  }

  /** This attempt's response goes to the client: no retry from now on, and the kept body is let go. */
  #commit(attempt: UpstreamAttempt): void {
    this.#committed = true;
    attempt.committed();
    this.#replay?.release();
  }

  /** Drops `attempt` and starts the next one after `delayMs` (the back-off). */
  #retry(attempt: UpstreamAttempt, delayMs: number, timeoutRetry: boolean): void {
    attempt.cancel(CANCELLED_FOR_RETRY);
    attempt.host.counters.rqError++;
    this.#release(attempt);
    this.#attempt = null;
    // Neither pool destroys a body it gave up on: left attached, it would hold the client's upload paused.
    this.#replay?.dropCurrent();
    this.#backoff = setTimeout(() => {
      this.#backoff = null;
      if (this.#finished) return;
      const { cluster } = this.fwd;
      // A retry is a request like any other to the max_requests circuit breaker (Envoy's pool overflow).
      if (cluster.active >= cluster.config.circuitBreakers.maxRequests) {
        cluster.stats.pendingOverflow.inc();
        this.#fail('overflow');
        return;
      }
      const elapsed = this.#requestEnded > 0 ? performance.now() - this.#requestEnded : 0;
      const host = this.fwd.retry!.nextAttempt(this.#attempts + 1, timeoutRetry, elapsed);
      if (host !== null) this.#startAttempt(host);
      else {
        cluster.stats.noneHealthy.inc();
        this.#fail('no_healthy_upstream');
      }
    }, delayMs);
  }

  /**
   * The body outgrew per_request_buffer_limit_bytes: no retry can send it again. An attempt under
   * way carries on; a retry waiting for its back-off cannot start (Envoy's 507).
   */
  #bodyOverflowed(): void {
    this.fwd.retry?.state?.abandon();
    if (this.#attempt === null && !this.#finished) this.#fail('retry_buffer_overflow');
  }

  /** Takes an attempt off the in-flight counts (once). */
  #release(attempt: UpstreamAttempt): void {
    if (attempt.released) return;
    attempt.released = true;
    const { cluster } = this.fwd;
    attempt.host.active--;
    cluster.active--;
    cluster.stats.rqActive.dec();
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
    this.#host.counters[this.#status >= 500 ? 'rqError' : 'rqSuccess']++;
  }

  /** `perTry`: a per-try timeout, already counted as one (not as the route's). */
  #abort(reason: PrimaryAbort, perTry = false): void {
    if (this.#finished) return;
    this.#attempt?.cancel(reason);
    // An upload still coming stops; a request already read is left alone (on HTTP/2 it is the
    // stream itself, and destroying it would reset the local reply that follows).
    if (this.fwd.body && !this.fwd.body.readableEnded) this.fwd.body.destroy();
    this.#fail(reason.failure, perTry, reason);
  }

  #fail(failure: ForwardFailure, perTry = false, err: Error = new Error(failure)): void {
    // Aborting undici reports the error back through onError synchronously: count it once.
    if (this.#finished) return;
    this.fwd.onFailure?.(failure, err);
    this.fwd.onFailure?.(failure, err);
    this.#tap?.fail(failure === 'timeout' ? 'timeout' : 'error');
    const { cluster } = this.fwd;
    const host = this.#host;
    // Between attempts the last one was already counted as an error when it was retried.
    if (this.#attempt !== null) host.counters.rqError++;
    if (failure === 'timeout') {
      if (!perTry) {
        cluster.stats.rqTimeout.inc();
        host.counters.rqTimeout++;
        if (this.#attempt !== null) reportFailure(host, 'timeout', this.#committed);
      }
    } else if (failure === 'reset' || failure === 'protocol_error' || failure === 'downstream_reset') {
      cluster.stats.rqReset.inc();
    }
    this.#finish();
    this.#replay?.dropCurrent();
    if (failure === 'downstream_reset') return;
    if (!this.res.headersSent) this.fwd.localReply(failure, this.#replyHeaders(failure));
    else this.res.destroy(); // The client already has part of a response: reset it, as Envoy does.
  }

  /** x-envoy-attempt-count on a local reply, when the virtual host asks for it; x-envoy-overloaded on an overflow. */
  #replyHeaders(failure: ForwardFailure): Record<string, string> | undefined {
    const count = this.fwd.retry?.attemptCountInResponse && this.#attempts > 0 ? String(this.#attempts) : null;
    if (failure === 'overflow') return count === null ? OVERLOADED : { ...OVERLOADED, 'x-envoy-attempt-count': count };
    return count === null ? undefined : { 'x-envoy-attempt-count': count };
  }

  #finish(): void {
    this.#finished = true;
    this.#timeout?.disarm();
    if (this.#backoff) clearTimeout(this.#backoff);
    if (this.#attempt !== null) this.#release(this.#attempt);
    this.fwd.retry?.state?.done();
    this.#replay?.release();
    this.fwd.cluster.stats.rqTime.observe(performance.now() - this.#started);
  }
}
