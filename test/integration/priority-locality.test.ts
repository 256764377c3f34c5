import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { chooseLevel, priorityLoad } from '../../src/upstream/priority-load';
import { bootstrap, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, type UpstreamOptions, closedPort, sleep, startUpstream } from '../harness/upstream';

// Priority levels and locality-weighted balancing with real upstreams: load spills from a level
// as its hosts fail (Envoy's overprovisioning factor 1.4), localities share a level by weight,
// and endpoint health_check_config / no_traffic_healthy_interval steer the health checker.

type Json = Record<string, unknown>;

describe('priority load (Envoy\'s arithmetic)', () => {
  const load = (levels: Array<[number, number]>, threshold = 50): ReturnType<typeof priorityLoad> =>
    priorityLoad(levels.map(([healthy, total]) => ({ healthy, total })), threshold);

  test('a level keeps all its load down to 72 % healthy, then spills by 1.4 × its healthy share', () => {
    expect(load([[100, 100], [10, 10]]).load).toEqual([100, 0]);
    expect(load([[72, 100], [10, 10]]).load).toEqual([100, 0]);
    expect(load([[71, 100], [10, 10]]).load).toEqual([99, 1]);
    expect(load([[50, 100], [10, 10]]).load).toEqual([70, 30]);
    expect(load([[0, 4], [10, 10]]).load).toEqual([0, 100]);
    expect(load([[20, 100], [20, 100], [100, 100]]).load).toEqual([28, 28, 44]);
  });

  test('levels short of 100 in total share by health; below the threshold each panics; all in panic spreads by host count', () => {
    expect(load([[20, 100], [20, 100]], 0)).toEqual({ load: [50, 50], panic: [false, false] });
    expect(load([[20, 100], [60, 100]], 50)).toEqual({ load: [28, 72], panic: [false, false] });
    expect(load([[10, 100], [60, 100]], 50)).toEqual({ load: [15, 85], panic: [true, false] });
    expect(load([[1, 10], [1, 30]], 50)).toEqual({ load: [25, 75], panic: [true, true] });
    expect(load([[0, 2], [0, 2]], 0)).toEqual({ load: [0, 0], panic: [false, false] });
    expect(chooseLevel([0, 0], 42)).toBe(0);
    expect(chooseLevel([70, 30], 69)).toBe(0);
    expect(chooseLevel([70, 30], 70)).toBe(1);
  });
});

function endpoint(port: number, extra: Json = {}): Json {
  return { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } }, ...extra };
}

function lbCluster(endpoints: Json[], extra: Json = {}): Json {
  return { name: 'backend', type: 'STATIC', connect_timeout: '1s', lb_policy: 'ROUND_ROBIN', load_assignment: { cluster_name: 'backend', endpoints }, ...extra };
}

function configErrors(c: Json): string[] {
  try {
    loadBootstrapText(bootstrap({ listeners: [], clusters: [c] }));
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

test('config errors name the field', () => {
  expect(configErrors(lbCluster([{ load_balancing_weight: 0, lb_endpoints: [endpoint(1, { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 1 } }, health_check_config: { port_value: 70000 } } })] }], {
    lb_policy: 'RING_HASH', common_lb_config: { locality_weighted_lb_config: {} },
  }))).toEqual([
    'static_resources.clusters[0].load_assignment.endpoints[0].load_balancing_weight: must be at least 1',
    'static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.health_check_config.port_value: must be at most 65535',
    'static_resources.clusters[0].common_lb_config.locality_weighted_lb_config: not supported by sidemirror with lb_policy RING_HASH',
  ]);
});

describe('through a proxy', () => {
  const ups: Upstream[] = [];
  let p: TestProxy | null = null;
  afterEach(async () => {
    await p?.stop();
    p = null;
    for (const u of ups.splice(0)) await u.close();
  });

  async function upstream(name: string, respond?: UpstreamOptions['respond']): Promise<Upstream> {
    const u = await startUpstream({ name, respond });
    ups.push(u);
    return u;
  }

  async function proxyFor(c: Json): Promise<TestProxy> {
    p = await startProxy(bootstrap({ listeners: [listener(routeConfig([route('/', 'backend')]))], clusters: [c] }));
    return p;
  }

  /** Bodies of `n` requests, one after another, counted. */
  async function tally(proxy: TestProxy, n: number): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await fetchText(`${proxy.url}/`);
      const key = r.status === 200 ? r.body : `status ${r.status}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  test('priority 1 takes nothing while priority 0 is healthy, and everything once its health check fails', async () => {
    let p0Healthy = true;
    const p0 = await upstream('p0', (req, res) => {
      res.writeHead(req.url === '/health' && !p0Healthy ? 503 : 200).end('p0');
    });
    const p1 = await upstream('p1');
    const proxy = await proxyFor(lbCluster([
      { priority: 0, lb_endpoints: [endpoint(p0.port)] },
      { priority: 1, lb_endpoints: [endpoint(p1.port)] },
    ], { health_checks: [{ timeout: '1s', interval: '0.1s', no_traffic_interval: '0.1s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: '/health' } }] }));
    expect(await tally(proxy, 20)).toEqual({ p0: 20 });
    p0Healthy = false;
    let last = '';
    for (let i = 0; i < 100 && last !== 'p1'; i++) {
      await sleep(50);
      last = (await fetchText(`${proxy.url}/`)).body;
    }
    expect(last).toBe('p1');
    expect(await tally(proxy, 20)).toEqual({ p1: 20 });
  });

  test('a priority 0 level half healthy keeps about 70 % of the load (EDS health), the rest spills to priority 1', async () => {
    const p0 = await upstream('p0');
    const p1 = await upstream('p1');
    const dead = await closedPort();
    const proxy = await proxyFor(lbCluster([
      { priority: 0, lb_endpoints: [endpoint(p0.port), endpoint(dead, { health_status: 'UNHEALTHY' })] },
      { priority: 1, lb_endpoints: [endpoint(p1.port)] },
    ]));
    const counts = await tally(proxy, 300);
    expect(Object.keys(counts).sort()).toEqual(['p0', 'p1']);
    // 210 expected for p0; ±5 standard deviations (about 8 each) keeps chance out of it.
    expect(counts.p0).toBeGreaterThan(170);
    expect(counts.p0).toBeLessThan(250);
  });

  test('localities share a priority by load_balancing_weight; a locality without a weight gets nothing', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const c = await upstream('c');
    const proxy = await proxyFor(lbCluster([
      { locality: { region: 'r', zone: 'z1' }, load_balancing_weight: 1, lb_endpoints: [endpoint(a.port)] },
      { locality: { region: 'r', zone: 'z2' }, load_balancing_weight: 3, lb_endpoints: [endpoint(b.port)] },
      { locality: { region: 'r', zone: 'z3' }, lb_endpoints: [endpoint(c.port)] },
    ], { common_lb_config: { locality_weighted_lb_config: {} } }));
    const counts = await tally(proxy, 200);
    expect(counts.c).toBeUndefined();
    expect(counts.a! + counts.b!).toBe(200);
    expect(counts.a).toBeGreaterThan(30);
    expect(counts.a).toBeLessThan(70);
  });

  test('without locality_weighted_lb_config the weights are ignored and every host takes its turn', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const proxy = await proxyFor(lbCluster([
      { locality: { zone: 'z1' }, load_balancing_weight: 1, lb_endpoints: [endpoint(a.port)] },
      { locality: { zone: 'z2' }, load_balancing_weight: 9, lb_endpoints: [endpoint(b.port)] },
    ]));
    expect(await tally(proxy, 20)).toEqual({ a: 10, b: 10 });
  });

  test('health_check_config sends checks to its own port with its own Host; a passing host with no traffic waits no_traffic_healthy_interval', async () => {
    const checks: string[] = [];
    const hc = await upstream('hc', (req, res) => {
      checks.push(String(req.headers.host));
      res.writeHead(200).end('ok');
    });
    const svc = await upstream('svc');
    const proxy = await proxyFor(lbCluster([
      { lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: svc.port } }, health_check_config: { port_value: hc.port, hostname: 'svc.internal' } } }] },
    ], { health_checks: [{ timeout: '1s', interval: '0.1s', no_traffic_interval: '0.1s', no_traffic_healthy_interval: '60s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: '/health' } }] }));
    expect(checks).toEqual(['svc.internal']);
    // At no_traffic_interval (0.1 s) there would be about ten more by now; a slow machine only makes fewer.
    await sleep(1000);
    expect(checks).toEqual(['svc.internal']);
    expect(svc.requests).toHaveLength(0);
    expect((await fetchText(`${proxy.url}/`)).body).toBe('svc');
  });
});
