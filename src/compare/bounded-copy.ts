// The first bytes of a body that arrives in chunks, copied into one buffer. Keeping the chunks
// themselves would cost a Buffer object (about 100 bytes of heap) per chunk: a peer answering in
// 1-byte chunks would turn a 256 KiB bound into tens of megabytes. Here memory is the bytes kept
// (at most twice over while the buffer grows), whatever the chunking.

const EMPTY = Buffer.alloc(0);

/** The buffer starts this small (most bodies are), then doubles up to the limit. */
const MIN_CAPACITY = 1024;

export class BoundedCopy {
  #buf: Buffer | null = null;
  #length = 0;
  #cut = false;

  constructor(readonly limit: number) {}

  /** Bytes kept. */
  get length(): number {
    return this.#length;
  }

  /** True once a chunk did not fit whole: the copy is not the whole body. */
  get cut(): boolean {
    return this.#cut;
  }

  /** Copies as much of `chunk` as fits; false once the limit has cut the copy. */
  push(chunk: Buffer): boolean {
    if (this.#cut) return false;
    const n = Math.min(chunk.length, this.limit - this.#length);
    if (n < chunk.length) this.#cut = true;
    if (n > 0) {
      this.#reserve(this.#length + n);
      chunk.copy(this.#buf!, this.#length, 0, n);
      this.#length += n;
    }
    return !this.#cut;
  }

  /** The bytes kept, as a view that stays valid after clear() (not after a later push). */
  bytes(): Buffer {
    return this.#buf === null ? EMPTY : this.#buf.subarray(0, this.#length);
  }

  /** Forgets everything, the cut included. */
  clear(): void {
    this.#buf = null;
    this.#length = 0;
    this.#cut = false;
  }

  #reserve(need: number): void {
    const capacity = this.#buf?.length ?? 0;
    if (need <= capacity) return;
    // Its own allocation, not a slice of Node's shared pool: a small copy must not pin an 8 KiB slab.
    const next = Buffer.allocUnsafeSlow(Math.min(this.limit, Math.max(need, 2 * capacity, MIN_CAPACITY)));
    if (this.#buf !== null) this.#buf.copy(next, 0, 0, this.#length);
    this.#buf = next;
  }
}
