// Intent-level builders for Envoy bootstrap documents (like grpc-js-xds's test framework): tests
// say which routes and clusters they want; these spell out the Envoy v3 YAML/JSON.

type Json = Record<string, unknown>;

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** A STATIC cluster with one endpoint per port on 127.0.0.1. */
export function cluster(name: string, ports: number[], extra: Json = {}): Json {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    lb_policy: 'ROUND_ROBIN',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: ports.map((port) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } })) }],
    },
    ...extra,
  };
}

/** A route: prefix match to a cluster, with optional route-action fields (e.g. request_mirror_policies). */
export function route(prefix: string, clusterName: string, action: Json = {}, match: Json = {}): Json {
  return { match: { prefix, ...match }, route: { cluster: clusterName, ...action } };
}

/** A route configuration with one virtual host for every domain. */
export function routeConfig(routes: Json[], vhostExtra: Json = {}, rcExtra: Json = {}): Json {
  return { name: 'local_route', virtual_hosts: [{ name: 'backend', domains: ['*'], routes, ...vhostExtra }], ...rcExtra };
}

/** A listener on 127.0.0.1 (port 0: any free port) whose HCM serves `rc`. */
export function listener(rc: Json, opts: { name?: string; port?: number; hcm?: Json } = {}): Json {
  return {
    name: opts.name ?? 'ingress',
    address: { socket_address: { address: '127.0.0.1', port_value: opts.port ?? 0 } },
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM_TYPE,
          stat_prefix: 'ingress_http',
          codec_type: 'AUTO',
          route_config: rc,
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
          ...opts.hcm,
        },
      }],
    }],
  };
}

/** The whole bootstrap as JSON text (which is YAML too), with an admin on a free loopback port. */
export function bootstrap(o: { listeners: Json[]; clusters: Json[]; admin?: boolean; extra?: Json }): string {
  return JSON.stringify({
    node: { id: 'test-node', cluster: 'test' },
    ...(o.admin === false ? {} : { admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } }),
    static_resources: { listeners: o.listeners, clusters: o.clusters },
    ...o.extra,
  }, null, 2);
}

/**
 * A sidecar that knows only its control plane: ADS over HTTP/2 to 127.0.0.1:`cpPort`, CDS and LDS
 * from it (`source` adds ConfigSource fields such as initial_fetch_timeout).
 */
export function xdsSidecarBootstrap(o: { nodeId: string; cpPort: number; adminPort?: number; source?: Json }): string {
  const source = { ads: {}, resource_api_version: 'V3', ...o.source };
  return JSON.stringify({
    node: { id: o.nodeId, cluster: 'sidecars' },
    ...(o.adminPort === undefined ? {} : { admin: { address: { socket_address: { address: '127.0.0.1', port_value: o.adminPort } } } }),
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds_cluster' } }] },
      cds_config: source,
      lds_config: source,
    },
    static_resources: { clusters: [cluster('xds_cluster', [o.cpPort], { typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    } })] },
  });
}
