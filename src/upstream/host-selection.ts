import type { UpstreamCluster } from './cluster-manager';
import type { Host } from './host';
import type { HashKey } from './load-balancer';

/**
 * Envoy's host selection under retry host predicates (LoadBalancerBase::chooseHost): a pick the
 * predicate turns down is made again, up to `extraPicks` more times, and the last pick stands
 * even when it was turned down too. Balancers that draw afresh each time (round robin, random,
 * least request) need nothing more; a hashing one is told how many picks were turned down.
 */
export function pickHost(cluster: UpstreamCluster, hashKey: HashKey, rejects: ((host: Host) => boolean) | null, extraPicks: number): Host | null {
  let host = cluster.pick(hashKey);
  if (rejects === null) return host;
  for (let i = 1; i <= extraPicks && host !== null && rejects(host); i++) host = cluster.pick(hashKey, i);
  return host;
}
