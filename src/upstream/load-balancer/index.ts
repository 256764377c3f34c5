import type { LbPolicy } from '../../config/model';
import { LeastRequestBalancer } from './least-request';
import type { LoadBalancer } from './load-balancer';
import { RandomBalancer } from './random';
import { RoundRobinBalancer } from './round-robin';

export type { LoadBalancer } from './load-balancer';

/** Balancers by Envoy's lb_policy name. */
export function createLoadBalancer(policy: LbPolicy, leastRequestChoiceCount: number): LoadBalancer {
  switch (policy) {
    case 'ROUND_ROBIN':
      return new RoundRobinBalancer();
    case 'RANDOM':
      return new RandomBalancer();
    case 'LEAST_REQUEST':
      return new LeastRequestBalancer(leastRequestChoiceCount);
    default:
      throw new Error(`lb_policy ${policy} has no balancer`);
  }
}
