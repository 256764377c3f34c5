import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { RequestAbortedError } from '../h2-errors';
import { RequestContentLengthMismatchError } from './errors';

// A streamed request body, copied to the socket with back-pressure both ways, the way undici's
// HTTP/1.1 client frames it: with the declared content-length when there is one, else chunked;
// the head waits for the first piece of the body so both leave in one write. One writer per
// connection, reused by each request that has a stream body.

/** What the writer tells its connection. */
export interface BodySink {
  /** The head went out (`withBody`: with the body's first piece): the request can no longer be taken back. */
  headWritten(withBody: boolean): void;
  /** The last byte went out. */
  bodyEnded(): void;
  bodyFailed(err: Error): void;
}

export class BodyWriter {
  #body: Readable | null = null;
  #head = '';
  /** The length to send (the declared one); -1: chunked. */
  #length = -1;
  #sent = 0;
  #expectsPayload = false;
  /** Tells a stale 'close' microtask (from a body that is gone) from the current body's. */
  #generation = 0;

  constructor(
    private readonly socket: Socket,
    private readonly sink: BodySink,
  ) {}

  get active(): boolean {
    return this.#body !== null;
  }

  /** `head`: everything up to the framing line, which the writer adds. */
  start(body: Readable, head: string, length: number, expectsPayload: boolean): void {
    if (body.errored !== null || body.destroyed) {
      this.sink.bodyFailed(body.errored ?? new RequestAbortedError());
      return;
    }
    this.#body = body;
    this.#head = head;
    this.#length = length;
    this.#sent = 0;
    this.#expectsPayload = expectsPayload;
    this.#generation++;
    body.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError).on('close', this.#onClose);
    this.socket.on('drain', this.#onDrain);
    body.resume();
  }

  /** Stops copying; the body is left as it is. */
  detach(): void {
    const body = this.#body;
    if (body === null) return;
    this.#body = null;
    this.#head = '';
    body.off('data', this.#onData).off('end', this.#onEnd).off('error', this.#onError).off('close', this.#onClose);
    this.socket.off('drain', this.#onDrain);
  }

  readonly #onData = (piece: Buffer | string): void => {
    const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
    const len = chunk.length;
    if (len === 0 || this.#body === null) return;
    if (this.#length !== -1 && this.#sent + len > this.#length) {
      this.#fail(new RequestContentLengthMismatchError());
      return;
    }
    const { socket } = this;
    socket.cork();
    if (this.#sent === 0) {
      socket.write(`${this.#head}${this.#length === -1 ? 'transfer-encoding: chunked' : `content-length: ${this.#length}`}\r\n\r\n`, 'latin1');
      this.#head = '';
      this.sink.headWritten(true);
    }
    this.#sent += len;
    let ok: boolean;
    if (this.#length === -1) {
      socket.write(`${len.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
    } else {
      ok = socket.write(chunk);
    }
    socket.uncork();
    if (!ok) this.#body?.pause();
  };

  readonly #onDrain = (): void => {
    this.#body?.resume();
  };

  readonly #onEnd = (): void => {
    const { socket } = this;
    const head = this.#head;
    const sent = this.#sent;
    const length = this.#length;
    this.detach();
    if (sent === 0) {
      socket.write(`${head}${this.#expectsPayload ? 'content-length: 0\r\n' : ''}\r\n`, 'latin1');
      this.sink.headWritten(false);
    } else if (length === -1) {
      socket.write('0\r\n\r\n', 'latin1');
    }
    if (length !== -1 && sent !== length) {
      this.sink.bodyFailed(new RequestContentLengthMismatchError());
      return;
    }
    this.sink.bodyEnded();
  };

  readonly #onError = (err: Error): void => {
    this.#fail(err);
  };

  readonly #onClose = (): void => {
    // 'close' may come before 'error' for a destroyed body; the error, if any, is the better report.
    const generation = this.#generation;
    queueMicrotask(() => {
      if (this.#body !== null && generation === this.#generation) this.#fail(new RequestAbortedError());
    });
  };

  #fail(err: Error): void {
    this.detach();
    this.sink.bodyFailed(err);
  }
}

/**
 * Ends a request body the pool gave up on, as undici does. A request from node:http is marked
 * destroyed without taking its socket along: that socket is the client's connection, which the
 * proxy still answers on.
 */
export function destroyBody(body: Buffer | Readable | null): void {
  if (body === null || Buffer.isBuffer(body) || body.destroyed) return;
  if (Object.getPrototypeOf(body).constructor === IncomingMessage) (body as unknown as { socket: unknown }).socket = null;
  body.destroy();
}
