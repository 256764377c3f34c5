import type { Host } from '../host';
import type { LoadBalancer } from './load-balancer';

/**
 * Envoy's least request: draw `choiceCount` hosts at random and keep the one with the fewest
 * requests in flight (power of two choices by default).
 */
export class LeastRequestBalancer implements LoadBalancer {
  constructor(
    private readonly choiceCount = 2,
    private readonly random: () => number = Math.random,
  ) {}

  // implements LoadBalancer
  pick(hosts: readonly Host[]): Host | null {
    if (hosts.length === 0) return null;
    let best: Host | null = null;
    for (let i = 0; i < this.choiceCount; i++) {
      const candidate = hosts[Math.floor(this.random() * hosts.length)]!;
      if (best === null || candidate.active < best.active) best = candidate;
    }
    return best;
  }
}
