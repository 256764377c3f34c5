import { bootstrap, cluster, listener, route, routeConfig, ROUTER_TYPE } from '../harness/bootstrap';
import { fetchText, startProxy, statValue } from '../harness/proxy';
import { startUpstream } from '../harness/upstream';

const MIRROR_FILTER = { name: 'sidemirror.filters.http.mirror', typed_config: { '@type': 'type.googleapis.com/sidemirror.filters.http.mirror.v1.Mirror' } };
const perRoute = (policies: unknown[]) => ({ 'sidemirror.filters.http.mirror': { '@type': 'type.googleapis.com/sidemirror.filters.http.mirror.v1.MirrorPerRoute', policies } });

test('every-Nth to a host URL, and sync mode with afterMirror-free wait', async () => {
  const primary = await startUpstream({ name: 'primary' });
  const mirror = await startUpstream({ name: 'mirror' });
  const slow = await startUpstream({ name: 'slow', delayMs: 200 });
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig([
      { ...route('/nth', 'primary'), typed_per_filter_config: perRoute([{ name: 'nth', host: `http://127.0.0.1:${mirror.port}`, sampling: { every_nth: 3 } }]) },
      { ...route('/sync', 'primary'), typed_per_filter_config: perRoute([{ name: 'sync', cluster: 'slow', mode: 'SYNC', sync_timeout: '1s' }]) },
    ]), { hcm: { http_filters: [MIRROR_FILTER, { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }] } })],
    clusters: [cluster('primary', [primary.port]), cluster('slow', [slow.port])],
  }));
  try {
    for (let i = 0; i < 9; i++) expect((await fetchText(`${p.url}/nth`)).body).toBe('primary');
    await mirror.waitForRequests(3);
    await new Promise((r) => setTimeout(r, 100));
    expect(mirror.requests).toHaveLength(3);
    expect(await statValue(p.adminUrl, 'mirror_policy.nth.skipped.sampling')).toBe(6);
    const res = await fetchText(`${p.url}/sync`);
    expect(res.body).toBe('primary');
    expect(res.ms).toBeGreaterThanOrEqual(190);
    expect(slow.requests).toHaveLength(1);
  } finally {
    await p.stop(); await primary.close(); await mirror.close(); await slow.close();
  }
});
