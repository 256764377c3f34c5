import type { MirrorPolicy } from '../config/model';
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
