import { Readable } from 'node:stream';

/**
 * The request body of a request that may be retried: read once from the client, kept up to a
 * limit, and handed to each attempt as a stream of its own that replays what was kept and then
 * follows the rest as it arrives, with the client's back-pressure (Envoy's router buffers the same
 * way). Past the limit nothing more is kept and `onOverflow` says so once: the attempt under way
 * carries on, but no retry can send the body again.
 */
export class BodyReplay {
  /** What was kept so far; null once the limit was passed or the body is no longer needed. */
  #kept: Buffer[] | null = [];
  #bytes = 0;
  #ended = false;
  #current: AttemptBody | null = null;
  #pausedForCurrent = false;

  constructor(
    private readonly source: Readable,
    private readonly limit: number,
    private readonly onOverflow: () => void,
  ) {
    source.on('data', this.#onData);
    source.once('end', this.#onEnd);
  }

  /** The body for the next attempt; the previous attempt's stream gets nothing more. */
  stream(): Readable {
    const prior = this.#current;
    this.#current = null;
    prior?.destroy();
    const s = new AttemptBody(this);
    this.#current = s;
    for (const chunk of this.#kept ?? []) s.push(chunk);
    if (this.#ended) s.push(null);
    return s;
  }

  /** The attempt that had the body is gone: its stream gets nothing more, and the client's body flows on. */
  dropCurrent(): void {
    const current = this.#current;
    if (current !== null) current.destroy();
  }

  /** No retry will come: stop keeping the body (the attempt under way still gets the rest). */
  release(): void {
    this.#kept = null;
    this.#bytes = 0;
  }

  /** The attempt stream wants more: let the client's body flow again. */
  resumeFor(s: AttemptBody): void {
    if (s !== this.#current || !this.#pausedForCurrent) return;
    this.#pausedForCurrent = false;
    this.source.resume();
  }

  detach(s: AttemptBody): void {
    if (s !== this.#current) return;
    this.#current = null;
    // Between attempts the body keeps coming in (and being kept, up to the limit), as in Envoy.
    if (this.#pausedForCurrent) {
      this.#pausedForCurrent = false;
      this.source.resume();
    }
  }

  readonly #onData = (chunk: Buffer): void => {
    const kept = this.#kept;
    if (kept !== null) {
      if (this.#bytes + chunk.length > this.limit) {
        this.release();
        this.onOverflow();
      } else {
        kept.push(chunk);
        this.#bytes += chunk.length;
      }
    }
    const current = this.#current;
    if (current !== null && !current.push(chunk)) {
      this.#pausedForCurrent = true;
      this.source.pause();
    }
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#current?.push(null);
  };
}

/** One attempt's view of the body. */
class AttemptBody extends Readable {
  constructor(private readonly owner: BodyReplay) {
    super();
  }

  override _read(): void {
    this.owner.resumeFor(this);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.owner.detach(this);
    callback(err);
  }
}
