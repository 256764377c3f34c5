import type { Host } from '../host';
import type { LoadBalancer } from './load-balancer';

export class RandomBalancer implements LoadBalancer {
  constructor(private readonly random: () => number = Math.random) {}

  // implements LoadBalancer
  pick(hosts: readonly Host[]): Host | null {
    if (hosts.length === 0) return null;
    return hosts[Math.floor(this.random() * hosts.length)]!;
  }
}
