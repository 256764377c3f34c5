// The sidemirror bootstrap for the bench: one listener, everything to the `primary` cluster and,
// with `shadowPort`, mirrored to the `shadow` cluster (Envoy's request_mirror_policies).

function staticCluster(name: string, port: number): unknown {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  };
}

export function sidemirrorBootstrap(port: number, primaryPort: number, shadowPort?: number): string {
  const route: Record<string, unknown> = { cluster: 'primary' };
  if (shadowPort !== undefined) route.request_mirror_policies = [{ cluster: 'shadow' }];
  const clusters = [staticCluster('primary', primaryPort)];
  if (shadowPort !== undefined) clusters.push(staticCluster('shadow', shadowPort));
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
