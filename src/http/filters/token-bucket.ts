/**
 * Envoy's local rate limit bucket (its atomic, timer-free one): it starts full, refills
 * continuously at tokens_per_fill per fill_interval up to max_tokens, and each request takes one
 * whole token. The refill is worked out from the time elapsed whenever the bucket is read, so no
 * timer runs per bucket.
 */
export class TokenBucket {
  #tokens: number;
  #at: number;
  /** Tokens per millisecond. */
  readonly #rate: number;

  constructor(readonly maxTokens: number, tokensPerFill: number, fillIntervalMs: number, nowMs: number) {
    this.#tokens = maxTokens;
    this.#at = nowMs;
    this.#rate = tokensPerFill / fillIntervalMs;
  }

  /** Takes a token if a whole one is there. */
  take(nowMs: number): boolean {
    this.#refill(nowMs);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whole tokens left (X-RateLimit-Remaining). */
  remaining(nowMs: number): number {
    this.#refill(nowMs);
    return Math.floor(this.#tokens);
  }

  /**
   * X-RateLimit-Reset as Envoy computes it: 0 while a token is there, else the whole seconds one
   * token takes to refill (rounded down, as Envoy's integer division does).
   */
  resetSeconds(nowMs: number): number {
    this.#refill(nowMs);
    if (this.#tokens >= 1) return 0;
    return Math.floor(Math.ceil(1 / this.#rate) / 1000);
  }

  #refill(nowMs: number): void {
    // A clock read earlier than the last one (it is monotonic, but be safe) adds nothing.
    if (nowMs > this.#at) this.#tokens = Math.min(this.maxTokens, this.#tokens + (nowMs - this.#at) * this.#rate);
    this.#at = Math.max(this.#at, nowMs);
  }
}
