import * as dns from 'node:dns';
import * as net from 'node:net';
import type { EndpointPlacement } from '../config/lb-model';
import type { Cluster } from '../config/model';

export interface ResolvedEndpoint {
  readonly address: string;
  readonly port: number;
  readonly hostname: string;
  readonly weight: number;
  readonly healthy: boolean;
  /** The endpoint's transport socket match metadata (see Cluster.transportSocketMatches). */
  readonly transportSocketMatch: ReadonlyMap<string, string>;
  readonly placement: EndpointPlacement;
}

/** Resolves names to addresses; injected so tests can stand in a fixed table. */
export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

const UNHEALTHY = new Set(['UNHEALTHY', 'DRAINING', 'TIMEOUT']);

/**
 * The endpoints of a cluster as addresses. STATIC and EDS clusters carry IPs; STRICT_DNS turns
 * every name into all its addresses (filtered by dns_lookup_family); LOGICAL_DNS keeps the first.
 */
export async function resolveEndpoints(cluster: Cluster, resolver: Resolver, endpoints = cluster.loadAssignment?.endpoints ?? []): Promise<ResolvedEndpoint[]> {
  const out: ResolvedEndpoint[] = [];
  for (const ep of endpoints) {
    const base = { port: ep.address.port, weight: ep.weight, healthy: !UNHEALTHY.has(ep.healthStatus), transportSocketMatch: ep.transportSocketMatch, placement: ep.placement };
    const host = ep.address.host;
    if (net.isIP(host) !== 0 || cluster.type === 'STATIC' || cluster.type === 'EDS') {
      out.push({ ...base, address: host, hostname: ep.hostname || host });
      continue;
    }
    const addresses = pickFamily(await resolver(host), cluster.dnsLookupFamily);
    const chosen = cluster.type === 'LOGICAL_DNS' ? addresses.slice(0, 1) : addresses;
    for (const a of chosen) out.push({ ...base, address: a.address, hostname: ep.hostname || host });
  }
  return out;
}

/**
 * The same, at once, when no name needs resolving (IP literals, STATIC, EDS): such a cluster has
 * its hosts from the moment it exists. null when DNS is needed.
 */
export function literalEndpoints(cluster: Cluster, endpoints = cluster.loadAssignment?.endpoints ?? []): ResolvedEndpoint[] | null {
  const out: ResolvedEndpoint[] = [];
  for (const ep of endpoints) {
    const host = ep.address.host;
    if (net.isIP(host) === 0 && cluster.type !== 'STATIC' && cluster.type !== 'EDS') return null;
    out.push({ port: ep.address.port, weight: ep.weight, healthy: !UNHEALTHY.has(ep.healthStatus), address: host, hostname: ep.hostname || host, transportSocketMatch: ep.transportSocketMatch, placement: ep.placement });
  }
  return out;
}

function pickFamily(addrs: Array<{ address: string; family: number }>, family: Cluster['dnsLookupFamily']): Array<{ address: string; family: number }> {
  const v4 = addrs.filter((a) => a.family === 4);
  const v6 = addrs.filter((a) => a.family === 6);
  switch (family) {
    case 'V4_ONLY':
      return v4;
    case 'V6_ONLY':
      return v6;
    case 'V4_PREFERRED':
      return v4.length > 0 ? v4 : v6;
    case 'ALL':
      return addrs;
    default:
      // AUTO: Envoy prefers IPv6 and falls back to IPv4.
      return v6.length > 0 ? v6 : v4;
  }
}
