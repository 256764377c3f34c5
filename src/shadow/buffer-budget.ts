/** Something that holds shadow body bytes and can say how many it holds right now. */
export interface BufferHolder {
  heldBytes(): number;
}

/**
 * One bound on the body bytes every shadow together holds, whatever cluster each goes to: a
 * header-chosen target spreads load over every cluster, so per-cluster caps alone do not bound
 * memory. Each holder reports what it holds when it grows; what its upstream has taken since is
 * re-read from every holder only when the sum reaches the cap, so the common path is O(1).
 */
export class ShadowBufferBudget {
  #total = 0;
  readonly #held = new Map<BufferHolder, number>();

  constructor(readonly maxTotalBytes: number) {}

  /** Bytes held by every shadow, as last reported. */
  get totalBytes(): number {
    return this.#total;
  }

  /** Records that `holder` holds `bytes` now; false when the sum, re-read, is over the cap. */
  update(holder: BufferHolder, bytes: number): boolean {
    this.#total += bytes - (this.#held.get(holder) ?? 0);
    this.#held.set(holder, bytes);
    if (this.#total <= this.maxTotalBytes) return true;
    this.#reread();
    return this.#total <= this.maxTotalBytes;
  }

  /** The holder ended: its bytes no longer count. */
  release(holder: BufferHolder): void {
    const bytes = this.#held.get(holder);
    if (bytes === undefined) return;
    this.#total -= bytes;
    this.#held.delete(holder);
  }

  #reread(): void {
    let total = 0;
    for (const holder of this.#held.keys()) {
      const bytes = holder.heldBytes();
      this.#held.set(holder, bytes);
      total += bytes;
    }
    this.#total = total;
  }
}
