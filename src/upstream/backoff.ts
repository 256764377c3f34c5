/**
 * Envoy's JitteredExponentialBackOffStrategy, as its retries use it: the n-th wait is drawn
 * uniformly from [0, base·2^(n-1)), the bound doubling until it reaches `maxMs`, and no wait is
 * longer than `maxMs`. (Envoy's docs give [0, (2^n-1)·base); its code, followed here, does this.)
 */
export class JitteredBackOff {
  #bound: number;

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.#bound = baseMs;
  }

  nextMs(): number {
    const bound = this.#bound;
    this.#bound = bound > this.maxMs / 2 ? this.maxMs : bound * 2;
    return Math.min(Math.floor(this.random() * bound), this.maxMs);
  }
}
