import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, LISTENER_TYPE } from '../../src/config/resources';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { type RawAdsServer, startRawAdsServer } from '../harness/ads-server';
import { HCM_TYPE, ROUTER_TYPE, cluster, xdsSidecarBootstrap } from '../harness/bootstrap';
import { type Upstream, startUpstream } from '../harness/upstream';

// Every config error is collected, each with its field path, so a NACK's error_detail grows with
// the resource: about 150 bytes of text for a route of a few bytes. A listener of 40,000 bad routes
// (about 1 MB) made a NACK of about 6 MB, past the 4 MiB a gRPC server takes by default (and our
// control plane's --max-message-bytes): the control plane never saw the NACK, the stream was
// torn down instead, and the operator learnt nothing. The sidecar must keep its NACK small.

jest.setTimeout(90_000);

const BAD_ROUTES = 40_000;

let ads: RawAdsServer;
let primary: Upstream;
let proxy: Proxy;

beforeAll(async () => {
  ads = await startRawAdsServer();
  primary = await startUpstream({ name: 'primary' });
  proxy = await Proxy.start({ loaded: loadBootstrapText(xdsSidecarBootstrap({ nodeId: 'nack-size', cpPort: ads.port })), logger: silentLogger(), initialFetchTimeoutMs: 1, drainTimeoutMs: 200 });
  await ads.waitFor((r) => r.type_url === CLUSTER_TYPE && r.node?.id === 'nack-size', 20_000);
  await ads.waitFor((r) => r.type_url === LISTENER_TYPE, 20_000);
  ads.push(CLUSTER_TYPE, 'c1', [{ '@type': CLUSTER_TYPE, ...cluster('primary', [primary.port]) }]);
  await ads.waitFor((r) => r.type_url === CLUSTER_TYPE && r.version_info === 'c1', 20_000);
});

afterAll(async () => {
  await proxy?.stop();
  await ads?.close();
  await primary?.close();
});

const listenerWith = (routes: unknown[]): Record<string, unknown> => ({
  '@type': LISTENER_TYPE, name: 'ingress', address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
    '@type': HCM_TYPE, stat_prefix: 'ingress_http',
    route_config: { name: 'local_route', virtual_hosts: [{ name: 'all', domains: ['*'], routes }] },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
  } }] }],
});

test('a listener with 40,000 bad routes is NACKed with an error_detail the server can take', async () => {
  const routes = Array.from({ length: BAD_ROUTES }, () => ({ match: { prefix: '/' }, route: { prefix_rewrite: '/x' } }));
  ads.push(LISTENER_TYPE, 'l-bad', [listenerWith(routes)]);
  const nack = await ads.waitFor((r) => r.type_url === LISTENER_TYPE && (r.error_detail?.message ?? '') !== '', 60_000);
  const message = nack.error_detail!.message;
  // The first errors are there, by path; the rest is marked cut.
  expect(message).toContain('routes[0].route');
  expect(message).toMatch(/truncated/);
  expect(Buffer.byteLength(message)).toBeLessThanOrEqual(64 * 1024 + 100);
  // The same stream goes on: a good listener is ACKed.
  ads.push(LISTENER_TYPE, 'l-good', [listenerWith([{ match: { prefix: '/' }, route: { cluster: 'primary' } }])]);
  const ack = await ads.waitFor((r) => r.type_url === LISTENER_TYPE && r.version_info === 'l-good', 30_000);
  expect(ack.error_detail).toBeNull();
});
