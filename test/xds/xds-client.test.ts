import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { type RawAdsServer, startRawAdsServer } from '../harness/ads-server';
import { HCM_TYPE, ROUTER_TYPE, cluster } from '../harness/bootstrap';
import { fetchText } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// The sidecar as an ADS client against a bare gRPC server that pushes exactly what each test
// says, including what a real control plane would refuse to send.

function sidecarBootstrap(adsPort: number): string {
  return JSON.stringify({
    node: { id: 'sidecar-1', cluster: 'front' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds_cluster' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: { clusters: [cluster('xds_cluster', [adsPort], { typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    } })] },
  });
}

const rdsListener = { '@type': LISTENER_TYPE, name: 'ingress', address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
    '@type': HCM_TYPE, stat_prefix: 'ingress_http',
    rds: { route_config_name: 'local_route', config_source: { ads: {}, resource_api_version: 'V3' } },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
  } }] }] };

const routes = (mirrorPolicy: Record<string, unknown>) => ({ '@type': ROUTE_TYPE, name: 'local_route',
  virtual_hosts: [{ name: 'backend', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'primary', request_mirror_policies: [mirrorPolicy] } }] }] });

describe('sidecar ADS client', () => {
  let ads: RawAdsServer;
  let primary: Upstream;
  let mirror: Upstream;
  let proxy: Proxy;

  beforeEach(async () => {
    ads = await startRawAdsServer();
    primary = await startUpstream({ name: 'primary' });
    mirror = await startUpstream({ name: 'mirror' });
    proxy = await Proxy.start({ loaded: loadBootstrapText(sidecarBootstrap(ads.port)), logger: silentLogger(), initialFetchTimeoutMs: 1, drainTimeoutMs: 200 });
    // 1. The sidecar subscribes to CDS and LDS (wildcard) with its node on the first request.
    await ads.waitFor((r) => r.type_url === CLUSTER_TYPE && r.node?.id === 'sidecar-1');
    await ads.waitFor((r) => r.type_url === LISTENER_TYPE);
    // 2. CDS, LDS, then the RDS it asks for.
    ads.push(CLUSTER_TYPE, 'c1', [{ '@type': CLUSTER_TYPE, ...cluster('primary', [primary.port]) }, { '@type': CLUSTER_TYPE, ...cluster('mirror', [mirror.port]) }]);
    await ads.waitFor((r) => r.type_url === CLUSTER_TYPE && r.version_info === 'c1');
    ads.push(LISTENER_TYPE, 'l1', [rdsListener]);
    await ads.waitFor((r) => r.type_url === ROUTE_TYPE && r.resource_names.includes('local_route'));
    ads.push(ROUTE_TYPE, 'r1', [routes({ cluster: 'mirror' })]);
    await ads.waitFor((r) => r.type_url === ROUTE_TYPE && r.version_info === 'r1');
    await proxy.xds!.config.ready;
  });

  afterEach(async () => {
    await proxy.stop();
    await ads.close();
    await primary.close();
    await mirror.close();
  });

  test('ACKs each type with its version and nonce, then serves and mirrors what it was sent', async () => {
    const ack = await ads.waitFor((r) => r.type_url === LISTENER_TYPE && r.version_info === 'l1');
    expect(ack.response_nonce).not.toBe('');
    expect(ack.error_detail).toBeNull();
    const res = await fetchText(`http://127.0.0.1:${proxy.listenerPort('ingress')}/x`);
    expect(res.body).toBe('primary');
    await mirror.waitForRequests(1);
  });

  test('NACKs an invalid route config with the field path and keeps serving the old one', async () => {
    ads.push(ROUTE_TYPE, 'r2', [routes({ cluster: 'mirror', cluster_header: 'x-mirror' })]);
    const nack = await ads.waitFor((r) => r.type_url === ROUTE_TYPE && r.error_detail != null && r.error_detail.message !== '');
    expect(nack.version_info).toBe('r1');
    expect(nack.error_detail!.message).toContain('RouteConfiguration "local_route".virtual_hosts[0].routes[0].route.request_mirror_policies[0]');
    const res = await fetchText(`http://127.0.0.1:${proxy.listenerPort('ingress')}/still`);
    expect(res.body).toBe('primary');
    await mirror.waitForRequests(1);
  });

  test('a new route config takes effect for the next request', async () => {
    const other = await startUpstream({ name: 'other-mirror' });
    try {
      ads.push(CLUSTER_TYPE, 'c2', [{ '@type': CLUSTER_TYPE, ...cluster('primary', [primary.port]) }, { '@type': CLUSTER_TYPE, ...cluster('mirror', [mirror.port]) },
        { '@type': CLUSTER_TYPE, ...cluster('other', [other.port]) }]);
      await ads.waitFor((r) => r.type_url === CLUSTER_TYPE && r.version_info === 'c2');
      ads.push(ROUTE_TYPE, 'r2', [routes({ cluster: 'other' })]);
      await ads.waitFor((r) => r.type_url === ROUTE_TYPE && r.version_info === 'r2');
      await fetchText(`http://127.0.0.1:${proxy.listenerPort('ingress')}/y`);
      await other.waitForRequests(1);
      expect(mirror.requests).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  test('an EDS cluster: the endpoints request goes out after the CDS ACK, and the cluster serves once they arrive', async () => {
    const edsCluster = { '@type': CLUSTER_TYPE, name: 'eds-primary', type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {} } } };
    ads.push(CLUSTER_TYPE, 'c3', [{ '@type': CLUSTER_TYPE, ...cluster('primary', [primary.port]) }, { '@type': CLUSTER_TYPE, ...cluster('mirror', [mirror.port]) }, edsCluster]);
    const ack = await ads.waitFor((r) => r.type_url === CLUSTER_TYPE && r.version_info === 'c3');
    const edsAsk = await ads.waitFor((r) => r.type_url === ENDPOINT_TYPE && r.resource_names.includes('eds-primary'));
    expect(ads.requests.indexOf(edsAsk)).toBeGreaterThan(ads.requests.indexOf(ack));
    ads.push(ENDPOINT_TYPE, 'e1', [{ '@type': ENDPOINT_TYPE, cluster_name: 'eds-primary',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: primary.port } } } }] }] }]);
    await ads.waitFor((r) => r.type_url === ENDPOINT_TYPE && r.version_info === 'e1');
    ads.push(ROUTE_TYPE, 'r3', [{ ...routes({ cluster: 'mirror' }), virtual_hosts: [{ name: 'backend', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'eds-primary' } }] }] }]);
    await ads.waitFor((r) => r.type_url === ROUTE_TYPE && r.version_info === 'r3');
    const res = await fetchText(`http://127.0.0.1:${proxy.listenerPort('ingress')}/eds`);
    expect(res.body).toBe('primary');
  });
});
