import type { ClientHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';

/** What the pump reports back to its exchange. */
export interface BodySink {
  /** The body's last byte went to the stream (which then ends or waits for trailers). */
  ended(): void;
  /** The body failed or closed before its end. */
  failed(err: Error): void;
}

/**
 * Copies a streamed request body into an HTTP/2 stream, pausing the body while the stream's
 * buffer is full. It never destroys the body: that belongs to the caller.
 */
export class RequestBodyPump {
  #stream: ClientHttp2Stream | null = null;
  #attached = false;
  /** Some of the body was read: it can no longer be replayed on another stream. */
  touched = false;
  #ended = false;

  constructor(
    private readonly body: Readable,
    private readonly sink: BodySink,
  ) {}

  start(stream: ClientHttp2Stream): void {
    const { body } = this;
    this.#stream = stream;
    if (body.readableEnded) {
      this.#end();
      return;
    }
    if (body.destroyed) {
      this.sink.failed(new Error('request body was destroyed before it was sent'));
      return;
    }
    this.#attached = true;
    body.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError).on('close', this.#onClose);
    stream.on('drain', this.#onDrain);
    body.resume();
  }

  /** Stops copying. `drain` lets the rest of the body flow away unread, so its sender is not stalled. */
  detach(drain: boolean): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.body.off('data', this.#onData).off('end', this.#onEnd).off('error', this.#onError).off('close', this.#onClose);
    this.#stream?.off('drain', this.#onDrain);
    if (drain && !this.#ended) this.body.resume();
    else this.body.pause();
  }

  readonly #onData = (chunk: Buffer | string): void => {
    this.touched = true;
    if (!this.#stream!.write(chunk)) this.body.pause();
  };

  readonly #onDrain = (): void => {
    this.body.resume();
  };

  readonly #onEnd = (): void => {
    this.detach(false);
    this.#end();
  };

  readonly #onError = (err: Error): void => {
    this.detach(false);
    this.sink.failed(err);
  };

  readonly #onClose = (): void => {
    // 'close' may come before 'error' for a destroyed body; the error, if any, is the better report.
    queueMicrotask(() => {
      if (!this.#attached) return;
      this.detach(false);
      this.sink.failed(new Error('request body closed before its end'));
    });
  };

  #end(): void {
    this.#ended = true;
    this.#stream!.end();
    this.sink.ended();
  }
}
