import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { fetchText, startProxy, statValue } from '../harness/proxy';
import { startUpstream } from '../harness/upstream';

test('a request reaches the primary and its mirror; the client sees only the primary', async () => {
  const primary = await startUpstream({ name: 'primary' });
  const mirror = await startUpstream({ name: 'mirror' });
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })]))],
    clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
  }));
  try {
    const res = await fetchText(`${p.url}/hello?x=1`, { headers: { host: 'example.com:8080' } });
    expect(res.status).toBe(200);
    expect(res.body).toBe('primary');
    const [shadow] = await mirror.waitForRequests(1);
    expect(shadow!.url).toBe('/hello?x=1');
    expect(shadow!.headers.host).toBe('example.com-shadow:8080');
    expect(shadow!.headers['x-envoy-internal']).toBe('true');
    expect(shadow!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(primary.requests[0]!.headers.host).toBe('example.com:8080');
    expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')).toBe(1);
  } finally {
    await p.stop();
    await primary.close();
    await mirror.close();
  }
});
