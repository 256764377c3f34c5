import type { Host } from '../host';
import type { LoadBalancer } from './load-balancer';

export class RoundRobinBalancer implements LoadBalancer {
  #next = 0;

  // implements LoadBalancer
  pick(hosts: readonly Host[]): Host | null {
    if (hosts.length === 0) return null;
    const host = hosts[this.#next % hosts.length]!;
    this.#next = (this.#next + 1) % 0x7fffffff;
    return host;
  }
}
