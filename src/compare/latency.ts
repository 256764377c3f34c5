// Latency side by side (asked of Diffy in its #86): a few counters and a fixed-bucket histogram
// per upstream role, so the summary costs the same memory after a billion requests as after one.

/** Bucket upper bounds in milliseconds; one more bucket holds everything slower. */
export const LATENCY_BUCKETS_MS: readonly number[] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000];

export interface LatencyReport {
  readonly count: number;
  /** Milliseconds, summed over every request. */
  readonly sum: number;
  readonly mean: number;
  readonly max: number;
  /** Upper bound of the bucket holding the median (never above max); 0 without requests. */
  readonly p50: number;
  readonly p99: number;
}

export class LatencySummary {
  #count = 0;
  #sum = 0;
  #max = 0;
  readonly #buckets = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);

  add(ms: number): void {
    const v = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.#count++;
    this.#sum += v;
    if (v > this.#max) this.#max = v;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && v > LATENCY_BUCKETS_MS[i]!) i++;
    this.#buckets[i]!++;
  }

  report(): LatencyReport {
    const round = (v: number): number => Math.round(v * 1000) / 1000;
    return {
      count: this.#count,
      sum: round(this.#sum),
      mean: this.#count === 0 ? 0 : round(this.#sum / this.#count),
      max: round(this.#max),
      p50: round(this.#quantile(0.5)),
      p99: round(this.#quantile(0.99)),
    };
  }

  #quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.ceil(q * this.#count);
    let seen = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i]!;
      if (seen >= rank) return Math.min(LATENCY_BUCKETS_MS[i] ?? this.#max, this.#max);
    }
    return this.#max;
  }
}
