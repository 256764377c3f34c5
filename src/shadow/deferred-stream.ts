import type { ShadowStream } from './writer';

/**
 * The body side of a shadow whose go/no-go is still being decided (a hook, a Redis budget):
 * chunks are held, up to a cap, until the shadow starts or is called off. Never blocks the client.
 */
export class DeferredShadowStream implements ShadowStream {
  #chunks: Buffer[] | null = [];
  #bytes = 0;
  #ended = false;
  #aborted = false;
  #target: ShadowStream | null = null;
  #whenEnded: Array<(body: Buffer | null) => void> = [];

  constructor(
    private readonly maxBytes: number,
    private readonly onOverflow: () => void,
  ) {}

  #trailers: Record<string, string> | null = null;

  write(chunk: Buffer): void {
    if (this.#target) return this.#target.write(chunk);
    if (this.#chunks === null) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.maxBytes) {
      this.#chunks = null;
      this.onOverflow();
      this.#settleEnded();
      return;
    }
    this.#chunks.push(chunk);
  }

  end(trailers: Record<string, string> | null = null): void {
    this.#ended = true;
    this.#trailers = trailers;
    if (this.#target) this.#target.end(trailers);
    this.#settleEnded();
  }

  abort(): void {
    this.#aborted = true;
    this.#chunks = null;
    this.#target?.abort();
    this.#settleEnded();
  }

  /** False once the body overflowed or the client went away: the shadow must not start. */
  get usable(): boolean {
    return this.#chunks !== null && !this.#aborted;
  }

  /** The whole body once the client has sent it (null if it overflowed or was aborted). */
  wholeBody(): Promise<Buffer | null> {
    if (this.#ended || !this.usable) return Promise.resolve(this.usable ? Buffer.concat(this.#chunks!) : null);
    return new Promise((resolve) => this.#whenEnded.push(resolve));
  }

  /** Hands what was held, and what is still to come, to the started shadow. */
  attach(target: ShadowStream): void {
    if (!this.usable) {
      target.abort();
      return;
    }
    for (const c of this.#chunks!) target.write(c);
    this.#chunks = [];
    this.#target = target;
    if (this.#ended) target.end(this.#trailers);
  }

  /** Calls the shadow off: drop what was held. */
  discard(): void {
    this.#chunks = null;
  }

  #settleEnded(): void {
    const waiters = this.#whenEnded;
    this.#whenEnded = [];
    const body = this.usable && this.#ended ? Buffer.concat(this.#chunks!) : null;
    for (const w of waiters) w(this.usable ? body : null);
  }
}
