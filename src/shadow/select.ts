import type { AllowedClusters, MirrorPolicy } from '../config/model';
import { firstListValue } from '../http/headers';
import type { HeaderLookup } from '../router/matchers';

export type TargetName =
  | { readonly ok: true; readonly cluster: string }
  | { readonly ok: false; readonly statsName: string };

/**
 * The cluster a policy names: `cluster`, or the first value of `cluster_header`. A missing or
 * empty header means no shadow; the miss is counted under a name that tells which header it was.
 */
export function targetName(policy: MirrorPolicy, header: HeaderLookup): TargetName {
  if (policy.cluster !== null) return { ok: true, cluster: policy.cluster };
  const name = policy.clusterHeader!;
  const first = firstListValue(header(name));
  return first ? { ok: true, cluster: first } : { ok: false, statsName: headerStatsName(name) };
}

/**
 * Stats label for shadows whose header named nothing usable. Header values are never used as
 * labels when they name no cluster, so clients cannot grow the stats without bound.
 */
export function headerStatsName(header: string): string {
  return `header:${header}`;
}

/**
 * Whether a cluster_header target may send to the cluster a header named: an allowed name or
 * prefix. Envoy's own request_mirror_policies have no such list; internal_only_headers guard them.
 */
export function clusterAllowed(allowed: AllowedClusters, name: string): boolean {
  if (allowed.names.has(name)) return true;
  for (const prefix of allowed.prefixes) if (name.startsWith(prefix)) return true;
  return false;
}
