import { constants } from 'node:http2';
import type { Dispatcher } from 'undici';
import { UpstreamResetError } from './h2-errors';
import type { Host } from './host';
import { reportConnected } from './outlier/report';
import type { AttemptFailure } from './retry-conditions';
import type { UpstreamFailure } from './errors';
import { Deadline, type DeadlineOwner } from '../util/deadline-wheel';

/** What an attempt reports to the exchange it belongs to. */
export interface AttemptOwner {
  attemptHeaders(a: UpstreamAttempt, status: number, raw: Buffer[], resume: () => void): boolean;
  attemptData(a: UpstreamAttempt, chunk: Buffer): boolean;
  attemptComplete(a: UpstreamAttempt, trailers: string[] | null): void;
  attemptError(a: UpstreamAttempt, err: Error): void;
  /** per_try_timeout (idle false) or per_try_idle_timeout (idle true) fired. */
  attemptTimedOut(a: UpstreamAttempt, idle: boolean): void;
}

/**
 * One upstream request of a primary exchange (the first, or a retry), as undici's handler. Once
 * cancelled, or ended, nothing it hears is passed on: a retry never sees the attempt before it.
 * It speaks undici's own handler protocol (onConnect/onHeaders/onData/onComplete/onError): the
 * newer controller API goes through an adapter that parses every header block into an object,
 * which the proxy does not need.
 */
export class UpstreamAttempt implements Dispatcher.DispatchHandler, DeadlineOwner {
  #abort: ((err: Error) => void) | null = null;
  #over = false;
  // per_try_timeout and per_try_idle_timeout, on the shared wheel; made when first armed.
  #perTry: Deadline | null = null;
  #idle: Deadline | null = null;
  #idleMs = 0;
  /** Taken off the host's and cluster's in-flight counts already. */
  released = false;

  constructor(
    private readonly owner: AttemptOwner,
    readonly host: Host,
  ) {}

  /** Starts the per-try timers (Envoy starts them once the downstream request is complete). */
  armTimers(perTryMs: number, idleMs: number): void {
    if (this.#over) return;
    if (perTryMs > 0 && this.#perTry === null) {
      this.#perTry = new Deadline(this);
      this.#perTry.arm(perTryMs);
    }
    if (idleMs > 0 && this.#idle === null) {
      this.#idleMs = idleMs;
      this.#idle = new Deadline(this);
      this.#touch();
    }
  }

  // implements DeadlineOwner
  onDeadline(d: Deadline): void {
    if (!this.#over) this.owner.attemptTimedOut(this, d === this.#idle);
  }

  /** This attempt's response is the one the client gets: per_try_timeout no longer applies (the idle one still does). */
  committed(): void {
    this.#perTry?.disarm();
  }

  /** Ends this attempt, resetting its upstream request; what it hears afterwards is dropped. */
  cancel(reason: Error): void {
    if (this.#over) return;
    this.#over = true;
    this.#stopTimers();
    this.#abort?.(reason);
  }

  #touch(): void {
    if (this.#idle !== null && !this.#over) this.#idle.arm(this.#idleMs);
  }

  #stopTimers(): void {
    this.#perTry?.disarm();
    this.#idle?.disarm();
  }

  // implements Dispatcher.DispatchHandler (undici's native protocol)
  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#over) abort(new AttemptCancelled());
    else reportConnected(this.host);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (this.#over) return true;
    this.#touch();
    return this.owner.attemptHeaders(this, statusCode, rawHeaders, resume);
  }

  onData(chunk: Buffer): boolean {
    if (this.#over) return true;
    this.#touch();
    return this.owner.attemptData(this, chunk);
  }

  // undici types raw trailers as strings; it hands Buffers, as the HTTP/2 pool does.
  onComplete(trailers: string[] | null): void {
    if (this.#over) return;
    this.#over = true;
    this.#stopTimers();
    this.owner.attemptComplete(this, trailers);
  }

  onError(err: Error): void {
    if (this.#over) return;
    this.#over = true;
    this.#stopTimers();
    this.owner.attemptError(this, err);
  }
}

/** What a cancelled attempt's upstream request is aborted with. */
export class AttemptCancelled extends Error {
  constructor() {
    super('upstream attempt cancelled');
  }
}

/** The failure as the retry conditions see it: a refused HTTP/2 stream, or a full pool, apart. */
export function attemptFailure(err: Error, failure: UpstreamFailure): AttemptFailure {
  if (err instanceof UpstreamResetError && err.http2Code === constants.NGHTTP2_REFUSED_STREAM) return 'refused_stream';
  if ((err as NodeJS.ErrnoException).code === 'SM_UPSTREAM_QUEUE_FULL') return 'overflow';
  return failure;
}
