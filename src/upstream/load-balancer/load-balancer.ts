import type { Host } from '../host';

/**
 * A request's hash key for consistent-hashing balancers (Envoy's LoadBalancerContext
 * computeHashKey): a 64-bit hash as a bigint (what route hash_policy yields), a number, or a
 * string hashed with xxHash64. Balancers that do not hash ignore it.
 */
export type HashKey = bigint | number | string | null;

/** Picks a host for one request among the cluster's current healthy hosts. */
export interface LoadBalancer {
  /**
   * `hashKey`: absent or null when the request has none (hashing balancers then pick at random).
   * `attempt`: 0, or how many picks of this request a retry host predicate turned down; a hashing
   * balancer then looks that many points further on (balancers that pick afresh each time ignore it).
   */
  pick(hosts: readonly Host[], hashKey?: HashKey, attempt?: number): Host | null;
}
