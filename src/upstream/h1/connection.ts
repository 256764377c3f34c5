import type { Socket } from 'node:net';
import type { NativeHttp } from '../../util/native-http';
import { InformationalError, RequestContentLengthMismatchError, SocketError, parseFailure } from './errors';
import type { ExchangeCarrier, H1Exchange } from './exchange';
import { HeldBody } from './held-body';
import { findHeader } from '../../util/raw-header';
import { idleTimeoutFor, rawHeaders } from './raw-headers';
import { type BodySink, BodyWriter, destroyBody } from './request-body';
import { expectsPayload } from './request-head';
import { bodyLength, requestHead, writeWithBody } from './request-writer';
import { type ParserSink, ResponseParser } from './response-parser';

/** What a connection needs from its pool. */
export interface ConnectionOwner {
  /** `host: …\r\n` for requests without a host header. */
  readonly hostLine: string;
  /** Idle connections close after this long (0: never), or sooner when the upstream's keep-alive header says so. */
  readonly keepAliveTimeoutMs: number;
  /** Requests per connection (0: no limit); the last one says `connection: close`. */
  readonly maxRequestsPerConnection: number;
  /** Handlers get header lines as the parser's latin1 strings rather than Buffers. */
  readonly stringHeaders: boolean;
  /** The connection can take another request. */
  released(conn: H1Connection): void;
  /** The connection is gone (closed, or handed to an upgrade), and why. */
  gone(conn: H1Connection, reason: Error): void;
}

/**
 * One keep-alive HTTP/1.1 connection: one request at a time (no pipelining), the head written as
 * one latin1 string (with a small body, in one write), the response read by Node's llhttp. It is
 * reused while both sides say keep-alive; an early response (before the request body was all
 * sent), a malformed response, or bytes that arrive while it is idle end it.
 */
export class H1Connection implements ExchangeCarrier, ParserSink, BodySink {
  readonly #socket: Socket;
  readonly #owner: ConnectionOwner;
  readonly #parser: ResponseParser;
  readonly #writer: BodyWriter;
  #exchange: H1Exchange | null = null;
  #starting = false;
  #served = 0;
  #closed = false;
  #error: Error | null = null;
  /** May take another request once this one is done (request side). */
  #reuse = true;
  // Per request:
  #written = false;
  #writing = false;
  #status = 0;
  #informational = false;
  /** Both sides keep the connection after this response. */
  #keepAlive = false;
  /** The response ends when the upstream closes (llhttp's should_keep_alive was false). */
  #closeDelimited = false;
  #contentLength = -1;
  #bodyBytes = 0;
  #trailers: string[] | null = null;
  #upgradeHead: { status: number; raw: string[] } | null = null;
  readonly #held = new HeldBody();
  /** The idle timeout after the latest response (the upstream's hint applied). */
  idleTimeoutMs: number;
  /** performance.now() when it last became idle. */
  idleSince = 0;

  constructor(socket: Socket, owner: ConnectionOwner, native: NativeHttp, consume: boolean) {
    this.#socket = socket;
    this.#owner = owner;
    this.idleTimeoutMs = owner.keepAliveTimeoutMs;
    this.#writer = new BodyWriter(socket, this);
    this.#parser = new ResponseParser(native, socket, this, consume);
    socket.on('error', this.#onError).on('end', this.#onEnd).on('close', this.#onClose);
  }

  /** Idle and alive. */
  get usable(): boolean {
    return this.#exchange === null && !this.#closed && !this.#socket.destroyed;
  }

  /** Takes a request; false when it ended (aborted in onConnect, refused) before anything was written. */
  start(ex: H1Exchange): boolean {
    const length = bodyLength(ex);
    if (length instanceof RequestContentLengthMismatchError) {
      ex.fail(length);
      return false;
    }
    this.#resetRequestState();
    this.#exchange = ex;
    this.#socket.ref();
    this.#starting = true;
    const connected = ex.connect(this);
    this.#starting = false;
    if (!connected) {
      this.#exchange = null;
      return false;
    }
    this.#served++;
    const max = this.#owner.maxRequestsPerConnection;
    const last = ex.reset || ex.method === 'HEAD' || ex.upgrade !== null || ex.method === 'CONNECT' || (max > 0 && this.#served >= max);
    if (last) this.#reuse = false;
    const head = requestHead(ex, this.#owner.hostLine, last);
    const body = ex.body;
    if (body === null || length === 0) {
      this.#written = true;
      this.#socket.write(length === 0 ? `${head}content-length: 0\r\n\r\n` : `${head}\r\n`, 'latin1');
      ex.requestSent();
    } else if (Buffer.isBuffer(body)) {
      this.#written = true;
      // A body sent with a method that means none: the upstream may not expect it, so no reuse.
      if (!expectsPayload(ex.method)) this.#reuse = false;
      writeWithBody(this.#socket, `${head}content-length: ${body.length}\r\n\r\n`, body);
      ex.requestSent();
    } else {
      this.#writing = true;
      this.#writer.start(body, head, length ?? -1, expectsPayload(ex.method));
    }
    return true;
  }

  // implements BodySink
  headWritten(withBody: boolean): void {
    this.#written = true;
    if (withBody && !expectsPayload(this.#exchange?.method ?? '')) this.#reuse = false;
  }

  bodyEnded(): void {
    this.#writing = false;
    this.#exchange?.requestSent();
  }

  bodyFailed(err: Error): void {
    this.#writing = false;
    const ex = this.#exchange;
    if (ex !== null) this.abortExchange(ex, err);
  }

  // implements ExchangeCarrier
  abortExchange(ex: H1Exchange, err: Error): void {
    if (ex !== this.#exchange) return ex.fail(err);
    this.#exchange = null;
    this.#writer.detach();
    this.#writing = false;
    ex.fail(err);
    destroyBody(ex.body);
    if (this.#starting) return;
    // Nothing was sent: the connection is as clean as before the request.
    if (!this.#written && !this.#closed) this.#owner.released(this);
    else this.#destroy(new InformationalError('aborted'));
  }

  // implements ParserSink
  readDone(): void {
    // A response (or part of one) nobody asked for: what it answers is unknown, so nothing on this
    // connection can be trusted. A whole one was already refused at its head (below).
    if (this.#exchange === null && !this.#closed && this.#parser.midMessage()) this.#destroy(new SocketError('bad response'));
  }

  headersComplete(status: number, statusText: string, raw: string[], keepAlive: boolean): number {
    const ex = this.#exchange;
    if (this.#closed) return -1;
    if (ex === null || ex.done) {
      this.#destroy(new SocketError('bad response'));
      return -1;
    }
    if (status < 200 && status !== 101) {
      // 100 Continue, 103 Early Hints: skipped; the final response follows.
      this.#informational = true;
      return 0;
    }
    if (status === 101 || (ex.method === 'CONNECT' && status < 300)) {
      if (ex.upgrade === null && ex.method !== 'CONNECT') {
        this.#failAndDestroy(new SocketError('bad upgrade'));
        return -1;
      }
      this.#upgradeHead = { status, raw };
      return 2;
    }
    this.#status = status;
    this.#closeDelimited = !keepAlive;
    this.#keepAlive = keepAlive && this.#reuse;
    this.#readHead(raw);
    const go = ex.headers(status, this.#raw(raw), this.#resume, statusText);
    if (this.#closed || ex.done) return -1;
    if (!go) this.#pause();
    return ex.method === 'HEAD' ? 1 : 0;
  }

  body(chunk: Buffer): void {
    const ex = this.#exchange;
    if (this.#closed || ex === null || ex.done) return;
    this.#bodyBytes += chunk.length;
    if (this.#held.paused) this.#held.hold(chunk);
    else if (!ex.data(chunk) && !ex.done) this.#pause();
  }

  trailers(raw: string[]): void {
    this.#trailers = this.#trailers === null ? raw : this.#trailers.concat(raw);
  }

  messageComplete(): void {
    if (this.#informational) {
      this.#informational = false;
      return;
    }
    const ex = this.#exchange;
    if (this.#closed || ex === null || ex.done) return;
    if (this.#held.paused) this.#held.holdEnd();
    else this.#complete(ex);
  }

  parseError(err: Error): void {
    if (this.#closed) return;
    this.#failAndDestroy(parseFailure(err, this.#status >= 200 ? this.#contentLength : -1, this.#bodyBytes));
  }

  upgraded(rest: Buffer): void {
    const ex = this.#exchange;
    const head = this.#upgradeHead;
    if (this.#closed || ex === null || head === null) return;
    this.#closed = true;
    this.#exchange = null;
    const socket = this.#socket;
    socket.off('error', this.#onError).off('end', this.#onEnd).off('close', this.#onClose);
    this.#parser.handOver(rest);
    this.#owner.gone(this, new InformationalError('upgrade'));
    ex.upgraded(head.status, this.#raw(head.raw), socket);
  }

  /** Fails the request in flight (if any) and closes the connection. */
  destroy(err: Error): void {
    this.#failAndDestroy(err);
  }

  /** The content-length (for length-mismatch reports) and the keep-alive hint, from the response head. */
  #readHead(raw: string[]): void {
    const length = findHeader(raw, 'content-length');
    this.#contentLength = length === undefined ? -1 : Number(length);
    this.#bodyBytes = 0;
    this.idleTimeoutMs = this.#owner.keepAliveTimeoutMs;
    if (!this.#keepAlive) return;
    const idle = idleTimeoutFor(findHeader(raw, 'keep-alive'), this.idleTimeoutMs);
    if (idle === -1) this.#keepAlive = false;
    else this.idleTimeoutMs = idle;
  }

  /** Header lines for the handler: as Buffers (undici's form), or the parser's strings when the owner says its handlers take them. */
  #raw(raw: string[]): Buffer[] {
    return this.#owner.stringHeaders ? (raw as unknown as Buffer[]) : rawHeaders(raw);
  }

  #complete(ex: H1Exchange): void {
    const trailers = this.#trailers;
    this.#trailers = null;
    this.#exchange = null;
    ex.complete(trailers === null ? null : this.#raw(trailers));
    if (this.#writing) {
      // Answered before the request was all sent: the rest of the body is not wanted, and what
      // the connection carries next is unknown.
      this.#writing = false;
      this.#writer.detach();
      destroyBody(ex.body);
      this.#destroy(new InformationalError('reset'));
    } else if (!this.#keepAlive || this.#closed) {
      this.#destroy(new InformationalError('reset'));
    } else {
      this.#socket.unref();
      this.#owner.released(this);
    }
  }

  #pause(): void {
    if (this.#held.paused) return;
    this.#held.paused = true;
    this.#parser.pause();
  }

  /** The resume handed to onHeaders: tells what was held back, then reads again. */
  readonly #resume = (): void => {
    const ex = this.#exchange;
    if (!this.#held.paused || ex === null || ex.done) return;
    const state = this.#held.release(ex);
    if (state === 'paused' || state === 'busy' || this.#exchange !== ex) return;
    // Reading again even when the end was held: the connection reads its next response (or its close) the same way.
    if (!this.#closed) this.#parser.resume();
    if (state === 'end') this.#complete(ex);
  };

  readonly #onError = (err: NodeJS.ErrnoException): void => {
    // A peer that resets instead of closing after a response delimited by the close: as an end.
    if (err.code === 'ECONNRESET' && this.#status >= 200 && this.#closeDelimited) this.#onEnd();
    this.#error ??= err;
  };

  readonly #onEnd = (): void => {
    const ex = this.#exchange;
    if (this.#closed || ex === null || ex.done) return this.#destroy(new SocketError('other side closed'));
    if (this.#status >= 200 && this.#closeDelimited) {
      const err = this.#parser.finish();
      if (err !== null) this.#failAndDestroy(parseFailure(err, this.#contentLength, this.#bodyBytes));
      return;
    }
    this.#failAndDestroy(new SocketError('other side closed'));
  };

  readonly #onClose = (): void => {
    this.#closed = true;
    this.#writer.detach();
    this.#parser.close();
    const reason = this.#error ?? new SocketError('closed');
    const ex = this.#exchange;
    // A response whose end was read while the handler had paused it still completes on resume.
    if (ex !== null && !ex.done && !this.#held.endHeld) {
      this.#exchange = null;
      ex.fail(reason);
      destroyBody(ex.body);
    }
    this.#owner.gone(this, reason);
  };

  #failAndDestroy(err: Error): void {
    const ex = this.#exchange;
    this.#exchange = null;
    if (ex !== null && !ex.done) {
      this.#writer.detach();
      this.#writing = false;
      ex.fail(err);
      destroyBody(ex.body);
    }
    this.#destroy(err);
  }

  #destroy(reason: Error): void {
    this.#error ??= reason;
    this.#socket.destroy();
  }

  #resetRequestState(): void {
    this.#written = false;
    this.#writing = false;
    this.#status = 0;
    this.#informational = false;
    this.#keepAlive = false;
    this.#closeDelimited = false;
    this.#trailers = null;
    this.#held.reset();
  }
}
