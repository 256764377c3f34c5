import type { Host } from '../host';

/** Picks a host for one request among the cluster's current healthy hosts. */
export interface LoadBalancer {
  pick(hosts: readonly Host[]): Host | null;
}
