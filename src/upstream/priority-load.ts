import { inPanic } from './panic';

/** Envoy's default overprovisioning_factor, in percent: a level 72 % healthy still takes all its load. */
const OVERPROVISIONING_PERCENT = 140;

export interface LevelCounts {
  readonly healthy: number;
  readonly total: number;
}

export interface PriorityLoad {
  /** Percent of requests each level takes, summing to 100 (all 0 when no level has a healthy host and none panics). */
  readonly load: readonly number[];
  /** Per level: balance over all its hosts rather than its healthy ones. */
  readonly panic: readonly boolean[];
}

/**
 * Envoy's LoadBalancerBase::recalculatePerPriorityState for levels given lowest priority number
 * first: a level's health is its healthy share times the overprovisioning factor (at most 100);
 * load goes to the levels in order, each taking its health scaled by the levels' total health
 * (capped at 100), the remainder to the first level that took any. A level panics when the
 * levels together are short of 100 and its own healthy share is below the threshold; when every
 * level panics, load is spread by host count.
 */
export function priorityLoad(levels: readonly LevelCounts[], panicThresholdPercent: number): PriorityLoad {
  const health = levels.map((l) => (l.total === 0 ? 0 : Math.min(100, Math.floor((OVERPROVISIONING_PERCENT * l.healthy) / l.total))));
  const normalized = Math.min(100, health.reduce((a, b) => a + b, 0));
  const panic = levels.map((l) => normalized < 100 && inPanic(l.healthy, l.total, panicThresholdPercent));
  const load = levels.map(() => 0);
  if (levels.length > 0 && panic.every((p) => p)) {
    spread(load, levels.map((l) => l.total));
  } else if (normalized > 0) {
    let remaining = 100;
    let first = -1;
    health.forEach((h, i) => {
      load[i] = Math.min(remaining, Math.floor((h * 100) / normalized));
      remaining -= load[i]!;
      if (load[i]! > 0 && first === -1) first = i;
    });
    if (first !== -1) load[first] += remaining;
  }
  return { load, panic };
}

/** Shares of 100 in proportion to `weights`, the rounding remainder to the first non-zero one. */
function spread(load: number[], weights: readonly number[]): void {
  const total = weights.reduce((a, b) => a + b, 0);
  if (total === 0) return;
  let remaining = 100;
  weights.forEach((w, i) => {
    load[i] = Math.floor((100 * w) / total);
    remaining -= load[i]!;
  });
  load[weights.findIndex((w) => w > 0)] += remaining;
}

/** The level a draw in [0, 100) lands on, by cumulative load; level 0 when no level has load. */
export function chooseLevel(load: readonly number[], draw: number): number {
  let cumulative = 0;
  for (let i = 0; i < load.length; i++) {
    cumulative += load[i]!;
    if (draw < cumulative) return i;
  }
  return 0;
}
