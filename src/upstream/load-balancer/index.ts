import type { LbPolicy, RingHashConfig } from '../../config/model';
import { LeastRequestBalancer } from './least-request';
import type { LoadBalancer } from './load-balancer';
import { RandomBalancer } from './random';
import { DEFAULT_RING_HASH, RingHashBalancer } from './ring-hash';
import { RoundRobinBalancer } from './round-robin';

export type { HashKey, LoadBalancer } from './load-balancer';

/** Balancers by Envoy's lb_policy name. */
export function createLoadBalancer(policy: LbPolicy, leastRequestChoiceCount: number, ringHash: RingHashConfig | null = null): LoadBalancer {
  switch (policy) {
    case 'ROUND_ROBIN':
      return new RoundRobinBalancer();
    case 'RANDOM':
      return new RandomBalancer();
    case 'LEAST_REQUEST':
      return new LeastRequestBalancer(leastRequestChoiceCount);
    case 'RING_HASH':
      return new RingHashBalancer(ringHash ?? DEFAULT_RING_HASH);
    default:
      throw new Error(`lb_policy ${policy} has no balancer`);
  }
}
