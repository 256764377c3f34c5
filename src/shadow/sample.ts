import type { FractionalPercent, MirrorPolicy } from '../config/model';
import type { Runtime } from '../runtime/runtime';

/**
 * Envoy's FilterUtility::shouldShadow: no runtime_fraction means every request; otherwise the
 * runtime key (when set at run time) or the default fraction decides against `random`.
 */
export function shouldShadow(policy: MirrorPolicy, runtime: Runtime, random: number): boolean {
  const rf = policy.runtimeFraction;
  if (rf === null) return true;
  return runtime.featureEnabled(rf.runtimeKey, rf.defaultValue, random);
}

/**
 * Consistent sampling: the key's FNV-1a hash, taken modulo the denominator, falls under the
 * numerator or not, so one key is always mirrored or never (for a given fraction).
 */
export function consistentSample(key: string, fraction: FractionalPercent): boolean {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % fraction.denominator < fraction.numerator;
}
