import type { Duplex, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { RequestAbortedError } from '../h2-errors';
import type { UpstreamDispatchOptions } from '../h2-exchange';
import type { RequestHead } from './request-head';

/** undici's legacy handler, with the calls its type definitions leave out. */
export type LegacyHandler = Dispatcher.DispatchHandler & {
  onRequestSent?(): void;
  onUpgrade?(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void;
};

/** Where an exchange's abort goes: the connection writing it, while it has one. */
export interface ExchangeCarrier {
  abortExchange(exchange: H1Exchange, err: Error): void;
}

/**
 * One request on the HTTP/1.1 pool, told to an undici legacy handler: onConnect(abort) once a
 * connection takes it, then onHeaders and onData (false from either pauses reading until the
 * resume it was given is called), then onComplete(trailers) or one onError. Once over, or
 * aborted, the handler hears nothing more. A handler that throws aborts the request with what it
 * threw, as undici does.
 */
export class H1Exchange implements RequestHead {
  // implements RequestHead (filled by prepareRequest)
  method = '';
  path = '';
  hostLine: string | null = null;
  lines = '';
  declaredLength = -1;
  reset = false;
  upgrade: string | null = null;
  body: Buffer | Readable | null = null;

  /** Ended: completed, failed or aborted. */
  done = false;
  carrier: ExchangeCarrier | null = null;

  constructor(
    readonly opts: UpstreamDispatchOptions,
    readonly handler: LegacyHandler,
  ) {}

  /** Handed to the handler at onConnect; undici's `abort(err?)`. */
  readonly abort = (err?: Error): void => {
    if (this.done) return;
    this.carrier?.abortExchange(this, err ?? new RequestAbortedError());
  };

  /** The request failed (or was refused) before or while it was sent: onError, once. */
  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.carrier = null;
    try {
      this.handler.onError?.(err);
    } catch {
      // A handler that throws while told of an error has nothing left to be told.
    }
  }

  /** onConnect; false when the handler aborted (or threw) inside it. */
  connect(carrier: ExchangeCarrier): boolean {
    this.carrier = carrier;
    try {
      this.handler.onConnect?.(this.abort);
    } catch (err) {
      this.abortWith(err);
    }
    return !this.done;
  }

  requestSent(): void {
    if (this.done || this.handler.onRequestSent === undefined) return;
    try {
      this.handler.onRequestSent();
    } catch (err) {
      this.abortWith(err);
    }
  }

  /** onHeaders; false: pause. */
  headers(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    try {
      return this.handler.onHeaders?.(status, raw, resume, statusText) !== false;
    } catch (err) {
      this.abortWith(err);
      return true;
    }
  }

  /** onData; false: pause. */
  data(chunk: Buffer): boolean {
    try {
      return this.handler.onData?.(chunk) !== false;
    } catch (err) {
      this.abortWith(err);
      return true;
    }
  }

  complete(trailers: Buffer[] | null): void {
    this.done = true;
    this.carrier = null;
    try {
      // undici types raw trailers as strings; it hands Buffers, and so does this pool.
      (this.handler.onComplete as ((t: Buffer[] | null) => void) | undefined)?.call(this.handler, trailers);
    } catch (err) {
      // undici tells a handler whose onComplete threw of the error as well.
      try {
        this.handler.onError?.(err as Error);
      } catch {
        // Nothing left to tell.
      }
    }
  }

  /** The socket is the handler's now: onUpgrade, and the exchange is over. */
  upgraded(status: number, raw: Buffer[], socket: Duplex): void {
    this.done = true;
    this.carrier = null;
    try {
      this.handler.onUpgrade!(status, raw, socket);
    } catch {
      socket.destroy();
    }
  }

  /** A handler that threw: the request is aborted with that error. */
  private abortWith(err: unknown): void {
    this.abort(err instanceof Error ? err : new Error(String(err)));
    // Not on a connection yet (onConnect threw before it was given one): plainly failed.
    this.fail(err instanceof Error ? err : new Error(String(err)));
  }
}
