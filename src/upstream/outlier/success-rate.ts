// Success-rate bookkeeping for outlier detection: two buckets per host (one filling, one read at
// the interval), and Envoy's statistical threshold over the hosts with enough volume.

/** Requests and successes of one interval, for one host and one origin (upstream or local). */
export class SuccessRateBuckets {
  #current = { success: 0, total: 0 };
  #previous = { success: 0, total: 0 };

  request(success: boolean): void {
    this.#current.total++;
    if (success) this.#current.success++;
  }

  /** At each interval: the bucket filled so far becomes the one read; a fresh one fills. */
  rotate(): void {
    const previous = this.#previous;
    previous.success = 0;
    previous.total = 0;
    this.#previous = this.#current;
    this.#current = previous;
  }

  /** The last full interval's success rate (percent) and request count; null when it had none. */
  rateAndVolume(): { rate: number; volume: number } | null {
    const { success, total } = this.#previous;
    return total === 0 ? null : { rate: (success * 100) / total, volume: total };
  }

  reset(): void {
    this.#current = { success: 0, total: 0 };
    this.#previous = { success: 0, total: 0 };
  }
}

/** A cluster's mean success rate and the rate below which a host is an outlier; -1 when not computed. */
export interface SuccessRateVerdict {
  readonly average: number;
  readonly threshold: number;
}

export const NO_VERDICT: SuccessRateVerdict = { average: -1, threshold: -1 };

/**
 * Envoy's successRateEjectionThreshold: mean − factor × population standard deviation. E.g. rates
 * 50, 100, 100, 100, 100 have mean 90 and stdev 20, so with factor 1.9 the threshold is 52.
 */
export function successRateThreshold(rates: readonly number[], stdevFactor: number): SuccessRateVerdict {
  if (rates.length === 0) return NO_VERDICT;
  let sum = 0;
  for (const r of rates) sum += r;
  const mean = sum / rates.length;
  let variance = 0;
  for (const r of rates) variance += (r - mean) ** 2;
  variance /= rates.length;
  return { average: mean, threshold: mean - stdevFactor * Math.sqrt(variance) };
}
