import { type ClientHttp2Stream, type IncomingHttpHeaders, constants } from 'node:http2';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { RequestAbortedError, UpstreamProtocolError, streamFailure } from './h2-errors';
import { toHttp2RequestHeaders, toHttp2Trailers, toRawHeaders } from './h2-headers';
import { RequestBodyPump } from './h2-request-body';
import type { H2Session } from './h2-session';

/** undici's dispatch options, plus request trailers (which undici's own HTTP/2 cannot send). */
export interface UpstreamDispatchOptions extends Dispatcher.DispatchOptions {
  /**
   * Called once, when the body has ended: the trailers to send after it, or null to end the
   * stream without any. Absent: the request never has trailers.
   */
  readonly requestTrailers?: () => Record<string, string> | null;
}

/** What an exchange needs from its pool. */
export interface ExchangeOwner {
  readonly scheme: 'http' | 'https';
  /** `host:port` of the origin, for a request that carries no `host`. */
  readonly authority: string;
  /** Puts back, at the head of the queue, a request the upstream refused without processing it. */
  retry(exchange: H2Exchange): void;
}

/** undici calls this when the request is fully written; its type definitions leave it out. */
type Handler = Dispatcher.DispatchHandler & { onRequestSent?(): void };

/** Refused streams (REFUSED_STREAM, or above a GOAWAY's last stream id) are tried again this often. */
const MAX_REFUSED_RETRIES = 3;

/**
 * One request on one HTTP/2 stream, told to an undici legacy handler: onConnect(abort), then
 * onHeaders, onData (both pausing the stream when they return false), onComplete(trailers) or a
 * single onError. Once it has ended, or abort() was called, the handler hears nothing more.
 */
export class H2Exchange {
  #done = false;
  #stream: ClientHttp2Stream | null = null;
  #session: H2Session | null = null;
  #pump: RequestBodyPump | null = null;
  /** The request side ended: the body went out, and the trailers if any. */
  #requestDone = false;
  #gotResponse = false;
  #trailers: Buffer[] | null = null;
  /** The first error the stream emitted; the report is built on 'close'. */
  #streamErr: Error | null = null;
  #refusals = 0;
  /** requestTrailers() is called once, even when the request is sent again after a refusal. */
  #requestTrailers: Record<string, string> | null | undefined = undefined;

  constructor(
    readonly opts: UpstreamDispatchOptions,
    private readonly handler: Handler,
    private readonly owner: ExchangeOwner,
    /** Dispatch order, so that requests sent again keep their place. */
    readonly seq: number,
  ) {}

  get done(): boolean {
    return this.#done;
  }

  /** The pool refused it before it got a stream (queue full, closed, connect failed). */
  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#reportError(err);
  }

  /** Opens the stream on a session with room and starts sending. */
  start(session: H2Session): void {
    if (this.#done) return;
    this.#call(() => this.handler.onConnect?.(this.#abort));
    if (this.#done) return;
    const { opts } = this;
    if (opts.method === 'CONNECT' || opts.upgrade) {
      this.fail(new TypeError('HTTP/2 pool: CONNECT and upgrades are not supported'));
      return;
    }
    const body = opts.body ?? null;
    if (body !== null && !(body instanceof Readable) && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      this.fail(new TypeError('HTTP/2 pool: request body must be a Readable, Buffer, Uint8Array, string or null'));
      return;
    }
    const size = body === null ? 0 : body instanceof Readable ? -1 : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    const wantsTrailers = opts.requestTrailers !== undefined;
    // With nothing to send after the headers, the trailers (if any) must be known now.
    if (size === 0 && wantsTrailers) this.#takeTrailers();
    const headersOnly = size === 0 && (this.#requestTrailers ?? null) === null;
    const headers = toHttp2RequestHeaders(opts.method, opts.path, this.owner.scheme, this.owner.authority, opts.headers);
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: headersOnly, waitForTrailers: !headersOnly && wantsTrailers });
    } catch (err) {
      // A session that just got GOAWAY: another one will do. Bad headers fail the request.
      if (session.accepting || this.#refusals >= MAX_REFUSED_RETRIES) this.fail(err as Error);
      else this.#retry();
      return;
    }
    this.#session = session;
    this.#stream = stream;
    this.#listen(stream);
    if (headersOnly) return this.#requestSent();
    if (wantsTrailers) stream.once('wantTrailers', () => this.#sendTrailers());
    if (body instanceof Readable) {
      this.#pump ??= new RequestBodyPump(body, { ended: () => !wantsTrailers && this.#requestSent(), failed: (err) => this.#abortWith(err) });
      this.#pump.start(stream);
      return;
    }
    stream.end(body ?? undefined);
    if (!wantsTrailers) this.#requestSent();
  }

  #listen(stream: ClientHttp2Stream): void {
    stream.on('response', (headers: IncomingHttpHeaders, _flags: number, raw?: string[]) => this.#onResponse(headers, raw));
    stream.on('data', (chunk: Buffer) => {
      if (this.#done) return;
      if (this.#call(() => this.handler.onData?.(chunk)) === false) stream.pause();
    });
    stream.on('trailers', (_t: IncomingHttpHeaders, _flags: number, raw?: string[]) => {
      this.#trailers = toRawHeaders(raw);
    });
    // A stream destroyed with its connection also ends its readable side: not a complete response.
    stream.on('end', () => stream.destroyed || this.#complete());
    stream.on('error', (err: Error) => {
      this.#streamErr ??= err;
    });
    stream.on('frameError', () => undefined);
    stream.once('close', () => this.#closed(stream));
  }

  #onResponse(headers: IncomingHttpHeaders, raw: string[] | undefined): void {
    if (this.#done) return;
    const status = Number(headers[':status']);
    if (!Number.isInteger(status) || status < 200 || status > 999) {
      this.#abortWith(new UpstreamProtocolError(`upstream sent an invalid :status ${String(headers[':status'])}`, null));
      return;
    }
    this.#gotResponse = true;
    const stream = this.#stream!;
    if (this.#call(() => this.handler.onHeaders?.(status, toRawHeaders(raw), this.#resume, '')) === false && !this.#done) stream.pause();
  }

  readonly #resume = (): void => {
    if (!this.#done) this.#stream?.resume();
  };

  #takeTrailers(): Record<string, string> | null {
    if (this.#requestTrailers === undefined) {
      this.#requestTrailers = null;
      const got = this.opts.requestTrailers ? this.#call(() => this.opts.requestTrailers!()) : null;
      this.#requestTrailers = got && Object.keys(got).length > 0 ? got : null;
    }
    return this.#requestTrailers;
  }

  #sendTrailers(): void {
    const stream = this.#stream;
    if (this.#done || stream === null) return;
    const trailers = this.#takeTrailers();
    if (this.#done) return;
    try {
      // No trailers: an empty DATA frame with END_STREAM ends the request instead.
      stream.sendTrailers(trailers === null ? {} : toHttp2Trailers(trailers));
    } catch (err) {
      this.#abortWith(err as Error);
      return;
    }
    this.#requestSent();
  }

  #requestSent(): void {
    if (this.#requestDone) return;
    this.#requestDone = true;
    if (!this.#done) this.#call(() => this.handler.onRequestSent?.());
  }

  #complete(): void {
    if (this.#done) return;
    if (!this.#gotResponse) {
      this.#abortWith(new UpstreamProtocolError('upstream ended the stream without a response', null));
      return;
    }
    this.#done = true;
    // The answer came before the whole request went: stop sending (RST_STREAM NO_ERROR, RFC 9113 §8.1).
    if (!this.#requestDone) {
      this.#pump?.detach(true);
      this.#stream?.close(constants.NGHTTP2_NO_ERROR);
    }
    const trailers = this.#trailers;
    try {
      (this.handler.onComplete as ((t: Buffer[] | null) => void) | undefined)?.call(this.handler, trailers);
    } catch {
      // Past the end of the exchange there is nothing left to abort.
    }
  }

  #closed(stream: ClientHttp2Stream): void {
    if (this.#done || stream !== this.#stream) return;
    const code = stream.rstCode ?? constants.NGHTTP2_NO_ERROR;
    const session = this.#session!;
    const refused = code === constants.NGHTTP2_REFUSED_STREAM || session.unprocessed(stream.id);
    const replayable = this.#pump === null || !this.#pump.touched;
    if (refused && !this.#gotResponse && replayable && this.#refusals < MAX_REFUSED_RETRIES) {
      this.#retry();
      return;
    }
    const err = streamFailure(code, this.#streamErr, session.goawayFailure(), session.gone);
    this.#done = true;
    this.#pump?.detach(true);
    this.#reportError(err);
  }

  #retry(): void {
    this.#refusals++;
    this.#pump?.detach(false);
    this.#stream = null;
    this.#session = null;
    this.#trailers = null;
    this.#streamErr = null;
    this.#requestDone = false;
    this.owner.retry(this);
  }

  /** The caller's abort: RST_STREAM CANCEL, then (at most) one onError. */
  readonly #abort = (err?: Error): void => {
    if (this.#done) return;
    this.#done = true;
    this.#pump?.detach(false);
    this.#cancelStream();
    this.#reportError(err ?? new RequestAbortedError());
  };

  /** A failure found on our side of the stream (bad body, a handler that threw, a malformed answer). */
  #abortWith(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#pump?.detach(true);
    this.#cancelStream();
    this.#reportError(err);
  }

  #cancelStream(): void {
    const stream = this.#stream;
    if (stream !== null && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
  }

  #reportError(err: Error): void {
    try {
      this.handler.onError?.(err);
    } catch {
      // A handler that throws while told of an error has nothing left to be told.
    }
  }

  /** Calls into the handler; a throw aborts the exchange with that error, as undici does. */
  #call<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.#abortWith(err instanceof Error ? err : new Error(String(err)));
      return undefined;
    }
  }
}
