// The sidemirror bootstrap for the bench: one listener (codec AUTO: HTTP/1.1 and h2c on one
// port), everything to the `primary` cluster and, with `shadowPort`, mirrored to the `shadow`
// cluster (Envoy's request_mirror_policies). With `http2`, both clusters speak HTTP/2 (h2c).

/** Envoy's way of saying "this cluster speaks HTTP/2". */
const HTTP2_UPSTREAM = {
  typed_extension_protocol_options: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
};

function staticCluster(name: string, port: number, http2: boolean): unknown {
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

export function sidemirrorBootstrap(port: number, primaryPort: number, shadowPort?: number, http2 = false): string {
  const route: Record<string, unknown> = { cluster: 'primary' };
  if (shadowPort !== undefined) route.request_mirror_policies = [{ cluster: 'shadow' }];
  const clusters = [staticCluster('primary', primaryPort, http2)];
  if (shadowPort !== undefined) clusters.push(staticCluster('shadow', shadowPort, http2));
  const bootstrap = {
    static_resources: {
      listeners: [
        {
          name: 'bench',
          address: { socket_address: { address: '127.0.0.1', port_value: port } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'bench',
                    route_config: {
                      name: 'bench',
                      virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route }] }],
                    },
                    http_filters: [
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters,
    },
  };
  return `${JSON.stringify(bootstrap, null, 2)}\n`;
}
