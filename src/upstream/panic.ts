/**
 * Envoy's panic mode for one priority level (LoadBalancerBase): when too few hosts are healthy
 * the balancer uses every host, healthy or not, rather than pile the load on the few left.
 * A level whose healthy share times the overprovisioning factor (1.4) reaches 100 % never
 * panics; otherwise it panics when its healthy share is below the threshold (0: never).
 */
export function inPanic(healthy: number, total: number, thresholdPercent: number): boolean {
  if (total === 0) return false;
  if (Math.floor((OVERPROVISIONING_PERCENT * healthy) / total) >= 100) return false;
  return (100 * healthy) / total < Math.min(thresholdPercent, 100);
}

/** Envoy's default overprovisioning_factor, in percent. */
const OVERPROVISIONING_PERCENT = 140;
