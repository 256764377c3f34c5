import type { Dispatcher } from 'undici';
import { BoundedCopy } from '../compare/bounded-copy';
import { ownHeader, setHeader } from '../http/headers';
import type { Host } from '../upstream/host';
import { reportConnected, reportResponseHead } from '../upstream/outlier/report';
import { Deadline, type DeadlineOwner } from '../util/deadline-wheel';
import type { ShadowOptions, ShadowResult } from './writer';

// One try of a shadow on one host (see exchange.ts for the shadow as a whole).

/** What an attempt reports to its shadow. */
export interface AttemptOwner {
  /** A connect, send or read timeout ended the attempt. */
  timeout(): void;
  attemptEnded(attempt: Attempt, status: number, err: Error | null): void;
  /** The request body was taken whole by the connection (for the send timeout). */
  bodyConsumed(): boolean;
}

/**
 * One try of a shadow on one host: the undici handler, in undici's native protocol so that a
 * discarded response costs no header parsing.
 */
export class Attempt implements Dispatcher.DispatchHandler, DeadlineOwner {
  #abortUpstream: ((err: Error) => void) | null = null;
  #status = 0;
  #rawHeaders: readonly Buffer[] | null = null;
  /** The response body's first bytes, for afterMirror; null when nobody looks. */
  #captured: BoundedCopy | null;
  #truncated = false;
  // The policy's timeouts, on the shared wheel; each made only when the policy sets it.
  readonly #connectTimer: Deadline | null;
  readonly #sendTimer: Deadline | null;
  /** Idle time waiting for the response: armed once the request is sent, refreshed by each response event. */
  readonly #readTimer: Deadline | null;
  #ended = false;
  /** Response body bytes seen so far, kept or not. */
  #bodyBytes = 0;
  /** The response went past `readBytes` and its connection was closed instead of read to the end. */
  cut = false;

  constructor(
    private readonly exchange: AttemptOwner,
    readonly host: Host,
    private readonly o: ShadowOptions,
    /** Response body bytes this attempt reads at most; the rest is never read. */
    private readonly readBytes: number,
  ) {
    this.#captured = o.captureBodyBytes > 0 ? new BoundedCopy(o.captureBodyBytes) : null;
    this.#connectTimer = o.connectTimeoutMs > 0 ? new Deadline(this) : null;
    this.#sendTimer = o.sendTimeoutMs > 0 ? new Deadline(this) : null;
    this.#readTimer = o.readTimeoutMs > 0 ? new Deadline(this) : null;
    this.#connectTimer?.arm(o.connectTimeoutMs);
  }

  // implements DeadlineOwner: a connect, send or read timeout passed, and each ends the shadow alike.
  onDeadline(): void {
    this.exchange.timeout();
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abortUpstream = abort;
    this.#connectTimer?.disarm();
    if (this.#ended) {
      abort(new Error('shadow aborted: client_aborted'));
      return;
    }
    reportConnected(this.host);
    if (this.#sendTimer !== null && !this.exchange.bodyConsumed()) this.#sendTimer.arm(this.o.sendTimeoutMs);
  }

  /** Response headers have arrived. */
  get responseStarted(): boolean {
    return this.#status !== 0;
  }

  onRequestSent(): void {
    this.#sendTimer?.disarm();
    this.#armRead();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.#armRead();
    if (statusCode < 200) return true;
    this.#status = statusCode;
    reportResponseHead(this.host, statusCode, rawHeaders);
    if (this.#captured) this.#rawHeaders = rawHeaders;
    this.o.capture?.head(statusCode, rawHeaders);
    // A declared length past the budget, with nothing to keep: none of the body is worth reading.
    if (this.#captured === null && declaredLength(rawHeaders) > this.readBytes) this.#cut();
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#ended) return true;
    this.#armRead();
    this.#bodyBytes += chunk.length;
    this.#keep(chunk);
    // A capture past its bounds has already counted the comparison as too_large.
    if (this.#bodyBytes > this.readBytes || this.o.capture?.data(chunk) === false) this.#cut();
    return true;
  }

  #keep(chunk: Buffer): void {
    // Discarded, unless afterMirror wants a look: then the first bytes only, copied (see BoundedCopy).
    if (this.#captured === null || this.#truncated) return;
    if (!this.#captured.push(chunk)) this.#truncated = true;
  }

  /**
   * Ends the attempt with what it has (status, headers, kept bytes) and closes the connection
   * rather than read the rest: the shadow answered, which is all a shadow owes us.
   */
  #cut(): void {
    this.cut = true;
    this.#truncated = true;
    this.#end();
    this.exchange.attemptEnded(this, this.#status, null);
    // undici reports the abort back through onError at once; the exchange has already ended.
    this.#abortUpstream?.(new Error('shadow response past its read budget'));
  }

  onComplete(): void {
    this.#end();
    this.exchange.attemptEnded(this, this.#status, null);
  }

  onError(err: Error): void {
    this.#end();
    this.exchange.attemptEnded(this, this.#status, err);
  }

  abort(reason: Error): void {
    this.#end();
    this.#abortUpstream?.(reason);
  }

  result(durationMs: number): ShadowResult {
    const headers: Record<string, string | string[]> = {};
    const raw = this.#rawHeaders ?? [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1').toLowerCase();
      const value = raw[i + 1]!.toString('latin1');
      // Own properties only: a header named `__proto__` or `constructor` is a header like any other.
      const prior = ownHeader(headers, name);
      setHeader(headers, name, prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value]);
    }
    return {
      ok: true,
      status: this.#status,
      headers,
      body: this.#captured ? this.#captured.bytes() : Buffer.alloc(0),
      truncated: this.#truncated,
      durationMs,
    };
  }

  #end(): void {
    this.#ended = true;
    this.#connectTimer?.disarm();
    this.#readTimer?.disarm();
    this.#sendTimer?.disarm();
  }

  /** (Re)starts the read timeout, when the policy has one and the attempt is still going. */
  #armRead(): void {
    if (!this.#ended) this.#readTimer?.arm(this.o.readTimeoutMs);
  }
}

/** The response's content-length, or -1 when it has none (chunked, or until close). */
function declaredLength(raw: readonly Buffer[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 14 && name.toString('latin1').toLowerCase() === 'content-length') {
      const n = Number(raw[i + 1]!.toString('latin1'));
      return Number.isFinite(n) ? n : -1;
    }
  }
  return -1;
}
