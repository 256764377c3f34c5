// Diffy's noise test. The reference (a second copy of the primary's version) shows how often a
// field differs between two runs of the same code; a field is a real difference only when the
// candidate differs there clearly more often than that, both relative to the noise and as a share
// of all the endpoint's requests.
import type { PathPatternSet } from './path-pattern';
import type { Difference, NoiseThresholds } from './types';

/** Diffy's defaults: 20 % relative, 0.03 % of the endpoint's requests. */
export const DEFAULT_THRESHOLDS: NoiseThresholds = { relative: 20, absolute: 0.03 };

/** |raw − noise| / (raw + noise) × 100; 0 when neither ever differed. */
export function relativeDifference(raw: number, noise: number): number {
  return raw + noise === 0 ? 0 : (Math.abs(raw - noise) / (raw + noise)) * 100;
}

/** |raw − noise| / total × 100; 0 without requests. */
export function absoluteDifference(raw: number, noise: number, total: number): number {
  return total <= 0 ? 0 : (Math.abs(raw - noise) / total) * 100;
}

/** A field's verdict from its raw and noise counts among `total` compared requests. */
export function verdict(raw: number, noise: number, total: number, t: NoiseThresholds): 'diff' | 'noise' {
  return raw > noise && relativeDifference(raw, noise) > t.relative && absoluteDifference(raw, noise, total) > t.absolute
    ? 'diff'
    : 'noise';
}

/**
 * One request's outcome: `match` without raw differences; `noise_only` when each raw difference
 * is ignored by a rule (on its counting path) or also shows between primary and reference (same
 * path and kind) in this very request; else `diff`.
 */
export function requestOutcome(
  raw: readonly Difference[],
  noise: readonly Difference[],
  ignored: PathPatternSet,
): 'match' | 'diff' | 'noise_only' {
  if (raw.length === 0) return 'match';
  const seen = new Set(noise.map(fieldKey));
  return raw.every((d) => isRequestNoise(d, seen, ignored)) ? 'noise_only' : 'diff';
}

/** True when this raw difference is explained by an ignore rule or by the same request's noise. */
export function isRequestNoise(d: Difference, noiseKeys: ReadonlySet<string>, ignored: PathPatternSet): boolean {
  return ignored.matches(d.path) || noiseKeys.has(fieldKey(d));
}

/** The name a difference is counted under: `<path>:<kind>`. */
export function fieldKey(d: Pick<Difference, 'path' | 'kind'>): string {
  return `${d.path}:${d.kind}`;
}
