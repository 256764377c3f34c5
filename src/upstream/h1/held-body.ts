import type { H1Exchange } from './exchange';

/**
 * What a response's handler has not been told yet because it paused: reading stops at once, but
 * the rest of the read that paused it is still parsed; those body pieces, and the end if it was
 * among them, wait here and are told in order on resume. One per connection, reused.
 */
export class HeldBody {
  paused = false;
  #chunks: Buffer[] = [];
  #next = 0;
  #end = false;
  #releasing = false;

  hold(chunk: Buffer): void {
    this.#chunks.push(chunk);
  }

  holdEnd(): void {
    this.#end = true;
  }

  /** The response's end was read and waits for the handler. */
  get endHeld(): boolean {
    return this.#end;
  }

  reset(): void {
    this.paused = false;
    this.#chunks.length = 0;
    this.#next = 0;
    this.#end = false;
  }

  /**
   * Tells `ex` what was held. 'paused': its handler paused again (or the exchange ended) and the
   * rest stays; 'end': all was told and the end was held too; 'open': all was told, read on.
   * 'busy' when called from inside a release (a handler that resumes from its onData).
   */
  release(ex: H1Exchange): 'paused' | 'end' | 'open' | 'busy' {
    if (this.#releasing) return 'busy';
    this.#releasing = true;
    try {
      while (this.#next < this.#chunks.length) {
        const go = ex.data(this.#chunks[this.#next++]!);
        if (ex.done || !go) return 'paused';
      }
      const end = this.#end;
      this.reset();
      return end ? 'end' : 'open';
    } finally {
      this.#releasing = false;
    }
  }
}
