// The sidemirror bootstraps for the bench: one listener (codec AUTO: HTTP/1.1 and h2c on one
// port), everything to the `primary` cluster and, with `shadowPort`, mirrored to the `shadow`
// cluster (Envoy's request_mirror_policies). With `http2`, both clusters speak HTTP/2 (h2c).
// `sidemirrorPolicyBootstrap` mirrors with sidemirror's own mirror filter instead, optionally
// comparing the responses, with an admin port to read the comparison's results from.

/** Envoy's way of saying "this cluster speaks HTTP/2". */
const HTTP2_UPSTREAM = {
  typed_extension_protocol_options: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
};

const ROUTER_FILTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const MIRROR_FILTER = 'sidemirror.mirror';
const MIRROR_TYPES = 'type.googleapis.com/sidemirror.filters.http.mirror.v1';

function staticCluster(name: string, port: number, http2 = false): unknown {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    ...(http2 ? HTTP2_UPSTREAM : {}),
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  };
}

const socketAddress = (port: number): unknown => ({ socket_address: { address: '127.0.0.1', port_value: port } });

interface BootstrapParts {
  port: number;
  /** The one route's entry: its `route` and, optionally, `typed_per_filter_config`. */
  routeEntry: Record<string, unknown>;
  httpFilters: unknown[];
  clusters: unknown[];
  adminPort?: number;
}

function bootstrap(p: BootstrapParts): string {
  const hcm = {
    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    stat_prefix: 'bench',
    route_config: {
      name: 'bench',
      virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, ...p.routeEntry }] }],
    },
    http_filters: p.httpFilters,
  };
  const doc = {
    ...(p.adminPort !== undefined ? { admin: { address: socketAddress(p.adminPort) } } : {}),
    static_resources: {
      listeners: [
        {
          name: 'bench',
          address: socketAddress(p.port),
          filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
        },
      ],
      clusters: p.clusters,
    },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export function sidemirrorBootstrap(port: number, primaryPort: number, shadowPort?: number, http2 = false): string {
  const route: Record<string, unknown> = { cluster: 'primary' };
  if (shadowPort !== undefined) route.request_mirror_policies = [{ cluster: 'shadow' }];
  const clusters = [staticCluster('primary', primaryPort, http2)];
  if (shadowPort !== undefined) clusters.push(staticCluster('shadow', shadowPort, http2));
  return bootstrap({ port, routeEntry: { route }, httpFilters: [ROUTER_FILTER], clusters });
}

export interface PolicyBootstrapOptions {
  port: number;
  adminPort: number;
  primaryPort: number;
  candidatePort: number;
  /** Compare the candidate's responses with the primary's (`compare: {}`, every default). */
  compare: boolean;
  /** With `compare`: a third upstream, a copy of the primary, as `reference_cluster`. */
  referencePort?: number;
}

/** The policy that mirrors to the candidate and, when comparing, compares (see README "Comparing responses"). */
export const POLICY_NAME = 'candidate';

/** Everything to `primary`, mirrored to `candidate` by one policy of sidemirror's mirror filter. */
export function sidemirrorPolicyBootstrap(o: PolicyBootstrapOptions): string {
  const compare = !o.compare ? undefined : o.referencePort === undefined ? {} : { reference_cluster: 'reference' };
  const policy = { name: POLICY_NAME, cluster: 'candidate', ...(compare !== undefined ? { compare } : {}) };
  const clusters = [staticCluster('primary', o.primaryPort), staticCluster('candidate', o.candidatePort)];
  if (o.compare && o.referencePort !== undefined) clusters.push(staticCluster('reference', o.referencePort));
  return bootstrap({
    port: o.port,
    adminPort: o.adminPort,
    routeEntry: {
      route: { cluster: 'primary' },
      typed_per_filter_config: { [MIRROR_FILTER]: { '@type': `${MIRROR_TYPES}.MirrorPerRoute`, policies: [policy] } },
    },
    httpFilters: [{ name: MIRROR_FILTER, typed_config: { '@type': `${MIRROR_TYPES}.Mirror` } }, ROUTER_FILTER],
    clusters,
  });
}
