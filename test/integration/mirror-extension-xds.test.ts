import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { HCM_TYPE, cluster, routeConfig, xdsSidecarBootstrap } from '../harness/bootstrap';
import { type Json, extBootstrap, extRoute, mirrorHttpFilters } from '../harness/mirror-ext';
import { fetchText, startProxy } from '../harness/proxy';
import { sleep, startUpstream } from '../harness/upstream';

// The same mirror-filter config from a static bootstrap and over xDS (LDS with the filter in
// http_filters, RDS with MirrorPerRoute in typed_per_filter_config) from sidemirror's own control
// plane: the extended policy behaves identically. Real sockets on 127.0.0.1, stopped by handle.

const POLICIES = [{ name: 'nth', cluster: 'mirror', sampling: { every_nth: 3 }, marker_header: 'x-mirrored-from' }];

function xdsBootstrap(cpPort: number): string {
  return xdsSidecarBootstrap({ nodeId: 'mirror-ext', cpPort });
}

function resources(routes: Json[], clusters: Json[]): string {
  const listener = {
    '@type': LISTENER_TYPE, name: 'ingress', address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': HCM_TYPE, stat_prefix: 'ingress_http', codec_type: 'AUTO',
      rds: { route_config_name: 'local_route', config_source: { ads: {}, resource_api_version: 'V3' } },
      http_filters: mirrorHttpFilters(),
    } }] }],
  };
  return JSON.stringify({
    version_info: 'm1',
    resources: [listener, { '@type': ROUTE_TYPE, ...routeConfig(routes) }, ...clusters.map((c) => ({ '@type': CLUSTER_TYPE, ...c }))],
  });
}

test('every_nth (with marker_header) works identically from a static bootstrap and over xDS', async () => {
  const primary = await startUpstream({ name: 'primary' });
  const mirror = await startUpstream({ name: 'mirror' });
  const routes = [extRoute('/', 'primary', POLICIES)];
  const clusters = [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])];
  const cp = await startControlPlane({ initialText: resources(routes, clusters), listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger() });
  let xds: Proxy | null = null;
  const fixed = await startProxy(extBootstrap({ routes, clusters }));
  try {
    xds = await Proxy.start({ loaded: loadBootstrapText(xdsBootstrap(cp.port)), logger: silentLogger(), initialFetchTimeoutMs: 5000, drainTimeoutMs: 200 });
    await xds.xds!.config.ready;
    const xdsUrl = `http://127.0.0.1:${xds.listenerPort('ingress')}`;
    for (const [base, tag] of [[fixed.url, 'static'], [xdsUrl, 'xds']] as const) {
      for (let i = 0; i < 9; i++) {
        const res = await fetchText(`${base}/${tag}/${i}`, { headers: { host: `${tag}.local` } });
        expect(res).toMatchObject({ status: 200, body: 'primary' });
      }
    }
    await mirror.waitForRequests(6);
    await sleep(200);
    const seen = (tag: string): string[] => mirror.requests.filter((q) => q.url.startsWith(`/${tag}/`)).map((q) => `${q.url} ${String(q.headers['x-mirrored-from'])}`).sort();
    expect(seen('static')).toEqual(['/static/0 static.local', '/static/3 static.local', '/static/6 static.local']);
    expect(seen('xds')).toEqual(['/xds/0 xds.local', '/xds/3 xds.local', '/xds/6 xds.local']);
    for (const p of [fixed.proxy, xds]) {
      expect((await p.stats.text()).split('\n')).toEqual(expect.arrayContaining(['mirror_policy.nth.sent: 3', 'mirror_policy.nth.skipped.sampling: 6']));
    }
  } finally {
    await xds?.stop();
    await fixed.stop();
    await cp.close();
    await primary.close();
    await mirror.close();
  }
});
