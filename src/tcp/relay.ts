import type { Socket } from 'node:net';

/** What one direction of a proxied connection reports as bytes move. */
export interface RelayEvents {
  /** `n` bytes were read from the source and handed to the destination. */
  bytes(n: number): void;
  /** The destination held more than its limit: the source is no longer read. */
  paused(): void;
  /** The destination drained to half its limit: the source is read again. */
  resumed(): void;
  /** Bytes were read or written: the connection is not idle. */
  activity(): void;
}

/**
 * One direction of a TCP proxy: what `from` sends is written to `to`, with Envoy's watermarks
 * on `to`'s write buffer (above `limit` bytes `from` is paused, below half of it resumed, so
 * neither side can make the proxy hold more than about `limit` plus one read), and `from`'s end
 * (a half-close) passed on as `to`'s end once its bytes are out. Bytes for a destination that has
 * already closed are dropped, as Envoy drops them. A limit of 0 (Envoy: no limit) takes Node's
 * own high-water mark of the destination, so the proxy stays bounded.
 */
export class Relay {
  readonly #high: number;
  readonly #low: number;
  #paused = false;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    limit: number,
    private readonly events: RelayEvents,
  ) {
    this.#high = limit > 0 ? limit : to.writableHighWaterMark;
    this.#low = Math.floor(this.#high / 2);
  }

  start(): void {
    const { from, to } = this;
    from.on('data', this.#onData);
    const passEnd = (): void => {
      if (!to.destroyed && !to.writableEnded) to.end();
    };
    // A source that sent nothing before its end has already said so (Node emits 'end' unread).
    if (from.readableEnded) passEnd();
    else from.once('end', passEnd);
    // A destination gone while the source waits for room: read on, so that the source (whose
    // other direction may still be flushing) is never stuck behind bytes nobody will take.
    to.once('close', () => {
      if (!this.#paused) return;
      this.#paused = false;
      from.resume();
    });
    // The source may have been paused by an earlier look at its first bytes.
    from.resume();
  }

  readonly #onData = (chunk: Buffer): void => {
    const to = this.to;
    if (to.destroyed || to.writableEnded) return;
    this.events.bytes(chunk.length);
    this.events.activity();
    to.write(chunk, this.#written);
    if (!this.#paused && to.writableLength > this.#high) {
      this.#paused = true;
      this.from.pause();
      this.events.paused();
    }
  };

  readonly #written = (): void => {
    this.events.activity();
    if (this.#paused && this.to.writableLength <= this.#low && !this.to.destroyed) {
      this.#paused = false;
      this.from.resume();
      this.events.resumed();
    }
  };
}
