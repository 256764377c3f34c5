import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// The admin interface, as Envoy's: readiness, server info, stats (text, filtered, Prometheus),
// config dump, clusters, listeners and runtime. Real sockets on 127.0.0.1; stopped by handle.

describe('admin with one request sent to primary and mirrored', () => {
  let primary: Upstream;
  let mirror: Upstream;
  let p: TestProxy;

  beforeAll(async () => {
    primary = await startUpstream({ name: 'primary' });
    mirror = await startUpstream({ name: 'mirror' });
    p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })]))],
      clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
    }));
    expect((await fetchText(`${p.url}/one`)).body).toBe('primary');
    await mirror.waitForRequests(1);
  });

  afterAll(async () => {
    await p?.stop();
    await primary?.close();
    await mirror?.close();
  });

  const admin = (path: string, opts: Parameters<typeof fetchText>[1] = {}): ReturnType<typeof fetchText> => fetchText(`${p.adminUrl}${path}`, opts);

  test('/ready answers LIVE', async () => {
    const r = await admin('/ready');
    expect(r.status).toBe(200);
    expect(r.body.trim()).toBe('LIVE');
  });

  test('/server_info is JSON with version, state and node', async () => {
    const r = await admin('/server_info');
    expect(r.headers['content-type']).toMatch(/application\/json/);
    const info = JSON.parse(r.body) as Record<string, unknown>;
    expect(typeof info.version).toBe('string');
    expect(info.version).not.toBe('');
    expect(info.state).toBe('LIVE');
    expect(info.node).toEqual({ id: 'test-node', cluster: 'test' });
  });

  test('/stats counts upstream and downstream requests', async () => {
    for (let i = 0; i < 2; i++) expect((await fetchText(`${p.url}/more`)).status).toBe(200);
    await mirror.waitForRequests(3);
    const lines = (await admin('/stats')).body.split('\n');
    expect(lines).toContain('cluster.primary.upstream_rq_total: 3');
    expect(lines).toContain('http.ingress_http.downstream_rq_total: 3');
    expect(lines).toContain('cluster.primary.upstream_rq_200: 3');
    expect(lines).toContain('cluster.mirror.shadow.sent: 3');
    // Shadows do not count as the mirror cluster's ordinary upstream requests.
    expect(lines.filter((l) => l.startsWith('cluster.primary.upstream_rq_total'))).toHaveLength(1);
  });

  test('/stats?filter= keeps only matching names', async () => {
    const r = await admin(`/stats?filter=${encodeURIComponent('^cluster\\.primary\\.upstream_rq_total$')}`);
    expect(r.body.trim().split('\n')).toEqual([expect.stringMatching(/^cluster\.primary\.upstream_rq_total: \d+$/)]);
    const ingress = (await admin('/stats?filter=downstream_rq')).body.trim().split('\n');
    expect(ingress.length).toBeGreaterThan(0);
    for (const l of ingress) expect(l).toMatch(/downstream_rq/);
    expect((await admin('/stats?filter=(')).status).toBe(400);
  });

  test('/stats/prometheus uses Envoy metric names and our shadow counters', async () => {
    // A fresh proxy, so that the counts are exactly one.
    const p1 = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })]))],
      clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
    }));
    try {
      const before = mirror.requests.length;
      expect((await fetchText(`${p1.url}/prom`)).status).toBe(200);
      await mirror.waitForRequests(before + 1);
      const r = await fetchText(`${p1.adminUrl}/stats/prometheus`);
      expect(r.headers['content-type']).toMatch(/text\/plain/);
      const lines = r.body.split('\n');
      expect(lines).toContain('envoy_cluster_upstream_rq_total{envoy_cluster_name="primary"} 1');
      expect(lines).toContain('sidemirror_shadow_rq_total{envoy_cluster_name="mirror",outcome="sent",reason=""} 1');
      expect(lines).toContain('envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"} 1');
      expect(r.body).toContain('# TYPE envoy_cluster_upstream_rq_total counter');
      expect((await fetchText(`${p1.adminUrl}/stats?format=prometheus`)).body).toContain('envoy_cluster_upstream_rq_total{envoy_cluster_name="primary"} 1');
    } finally {
      await p1.stop();
    }
  });

  test('/config_dump has the four static dumps with their @types and the cluster names', async () => {
    const dump = JSON.parse((await admin('/config_dump')).body) as { configs: Array<Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(dump.configs.map((c) => c['@type'])).toEqual([
      'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump',
      'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
      'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
      'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
    ]);
    const [boot, listeners, clusters, routes] = dump.configs;
    expect(boot!.bootstrap.node.id).toBe('test-node');
    expect(listeners!.static_listeners).toHaveLength(1);
    expect(listeners!.static_listeners[0].listener['@type']).toBe('type.googleapis.com/envoy.config.listener.v3.Listener');
    expect(listeners!.static_listeners[0].listener.name).toBe('ingress');
    expect(clusters!.static_clusters.map((c: { cluster: { name: string } }) => c.cluster.name)).toEqual(['primary', 'mirror']);
    expect(clusters!.static_clusters[0].cluster['@type']).toBe('type.googleapis.com/envoy.config.cluster.v3.Cluster');
    const rc = routes!.static_route_configs[0].route_config;
    expect(rc['@type']).toBe('type.googleapis.com/envoy.config.route.v3.RouteConfiguration');
    expect(rc.name).toBe('local_route');
    expect(JSON.stringify(rc)).toContain('"mirror"');
  });

  test('/clusters lists each host with its counters', async () => {
    const lines = (await admin('/clusters')).body.split('\n');
    const before = Number(lines.find((l) => l.startsWith(`primary::127.0.0.1:${primary.port}::rq_total::`))?.split('::').pop());
    expect(lines).toContain('version_info::static');
    expect(lines).toContain(`mirror::127.0.0.1:${mirror.port}::hostname::127.0.0.1`);
    expect((await fetchText(`${p.url}/clusters-check`)).status).toBe(200);
    const after = (await admin('/clusters')).body.split('\n');
    expect(after).toContain(`primary::127.0.0.1:${primary.port}::rq_total::${before + 1}`);
    const json = JSON.parse((await admin('/clusters?format=json')).body) as { cluster_statuses: Array<{ name: string }> };
    expect(json.cluster_statuses.map((c) => c.name)).toEqual(['primary', 'mirror']);
  });

  test('/listeners names each listener and its address', async () => {
    expect((await admin('/listeners')).body.trim()).toBe(`ingress::127.0.0.1:${p.port}`);
    const json = JSON.parse((await admin('/listeners?format=json')).body) as { listener_statuses: Array<Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(json.listener_statuses[0]!.local_address.socket_address.port_value).toBe(p.port);
  });

  test('/runtime and POST /runtime_modify', async () => {
    const get = await admin('/runtime_modify?a.b=1', { method: 'GET' });
    expect(get.status).toBe(405); // Envoy: "Method GET not allowed, POST required."
    expect(get.body.trim()).toBe('Method GET not allowed, POST required.');
    const r = await admin('/runtime_modify?sidemirror.test_key=42&other=x', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.body.trim()).toBe('OK');
    const rt = JSON.parse((await admin('/runtime')).body) as { layers: string[]; entries: Record<string, { final_value: string }> };
    expect(rt.layers).toEqual(['static_layer', 'admin']);
    expect(rt.entries['sidemirror.test_key']!.final_value).toBe('42');
    expect(rt.entries.other!.final_value).toBe('x');
    expect((await admin('/runtime_modify', { method: 'POST' })).status).toBe(400);
  });

  test('an unknown admin path is a 404 listing the commands', async () => {
    const r = await admin('/nope');
    expect(r.status).toBe(404);
    expect(r.body).toContain('/config_dump');
  });
});

test('without an admin block the proxy runs, with no admin port', async () => {
  const up = await startUpstream({ name: 'up' });
  const p = await startProxy(bootstrap({ admin: false, listeners: [listener(routeConfig([route('/', 'up')]))], clusters: [cluster('up', [up.port])] }));
  try {
    expect(p.adminUrl).toBe('');
    expect(p.proxy.adminAddress()).toBeNull();
    const r = await fetchText(`${p.url}/x`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('up');
  } finally {
    await p.stop();
    await up.close();
  }
});
