import type * as http from 'node:http';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type RecordedRequest, type Upstream, sleep, startUpstream } from '../harness/upstream';

// Active HTTP health checks and RING_HASH with route hash_policy, end to end: real sockets on
// 127.0.0.1, each test starts its own upstreams and proxy and stops them by handle.

type Json = Record<string, unknown>;

const HC_PATH = '/healthz';

/** An upstream answering its name, and on HC_PATH the status `hc()` gives at that moment. */
interface HcUpstream extends Upstream {
  readonly name: string;
  /** Requests other than health checks. */
  traffic(): RecordedRequest[];
  healthChecks(): RecordedRequest[];
}

async function hcUpstream(name: string, hc: () => number | 'hang' = () => 200): Promise<HcUpstream> {
  const up = await startUpstream({
    name,
    respond: (req: RecordedRequest, res: http.ServerResponse) => {
      if (req.url === HC_PATH) {
        const status = hc();
        if (status === 'hang') return; // never answers: the check times out
        res.writeHead(status, { 'content-length': '0' });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) });
      res.end(name);
    },
  });
  return Object.assign(up, {
    name,
    traffic: () => up.requests.filter((r) => r.url !== HC_PATH),
    healthChecks: () => up.requests.filter((r) => r.url === HC_PATH),
  });
}

/** Health check settings (Envoy YAML) for a test: fast, thresholds 1/1 unless overridden. */
function healthCheck(extra: Json = {}): Json {
  return {
    health_checks: [{
      timeout: '1s', interval: '0.1s', no_traffic_interval: '0.1s', unhealthy_threshold: 1, healthy_threshold: 1,
      http_health_check: { path: HC_PATH },
      ...extra,
    }],
  };
}

async function withProxy(clusters: Json[], routes: Json[], body: (p: TestProxy) => Promise<void>): Promise<void> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(routes))], clusters }));
  try {
    await body(p);
  } finally {
    await p.stop();
  }
}

async function closeAll(ups: Upstream[]): Promise<void> {
  for (const u of ups) await u.close();
}

/** Polls `check` every 20 ms until it holds; fails after `timeoutMs`. */
async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`not within ${timeoutMs} ms: ${what}`);
}

async function healthFlags(p: TestProxy, clusterName: string, up: Upstream): Promise<string> {
  const { body } = await fetchText(`${p.adminUrl}/clusters`);
  const prefix = `${clusterName}::127.0.0.1:${up.port}::health_flags::`;
  return body.split('\n').find((l) => l.startsWith(prefix))?.slice(prefix.length) ?? '(absent)';
}

/** Sends `n` GETs one after another; returns the bodies (the upstream names). */
async function getMany(url: string, n: number, headers: (i: number) => Record<string, string> = () => ({})): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await fetchText(url, { headers: headers(i) });
    expect(r.status).toBe(200);
    out.push(r.body);
  }
  return out;
}

describe('active HTTP health checks', () => {
  test('a host failing its check gets no traffic until it passes again', async () => {
    let bStatus = 503;
    const a = await hcUpstream('a');
    const b = await hcUpstream('b', () => bStatus);
    try {
      await withProxy([cluster('backend', [a.port, b.port], healthCheck())], [route('/', 'backend')], async (p) => {
        // The proxy starts once every host had its first check (Envoy's cluster warming).
        expect(await healthFlags(p, 'backend', a)).toBe('healthy');
        expect(await healthFlags(p, 'backend', b)).toBe('/failed_active_hc');
        expect(await statValue(p.adminUrl, 'cluster.backend.health_check.healthy')).toBe(1);

        expect(new Set(await getMany(`${p.url}/x`, 20))).toEqual(new Set(['a']));
        expect(b.traffic()).toHaveLength(0);

        // The check itself: GET path, Host is the cluster's name, Envoy's user agent.
        const check = a.healthChecks()[0]!;
        expect(check.method).toBe('GET');
        expect(check.headers.host).toBe('backend');
        expect(check.headers['user-agent']).toBe('Envoy/HC');

        bStatus = 200;
        await eventually('b passes its check', async () => (await healthFlags(p, 'backend', b)) === 'healthy');
        const bodies = await getMany(`${p.url}/y`, 20);
        expect(bodies.filter((x) => x === 'a').length).toBeGreaterThan(0);
        expect(bodies.filter((x) => x === 'b').length).toBeGreaterThan(0);
        expect(await statValue(p.adminUrl, 'cluster.backend.health_check.healthy')).toBe(2);
        expect(await statValue(p.adminUrl, 'cluster.backend.health_check.attempt')).toBeGreaterThanOrEqual(3);
        expect(await statValue(p.adminUrl, 'cluster.backend.health_check.success')).toBeGreaterThanOrEqual(2);
        expect(await statValue(p.adminUrl, 'cluster.backend.health_check.failure')).toBeGreaterThanOrEqual(1);

        // And out again at once on a bad status (Envoy ignores unhealthy_threshold for those).
        bStatus = 500;
        await eventually('b fails again', async () => (await healthFlags(p, 'backend', b)) === '/failed_active_hc');
        const before = b.traffic().length;
        expect(new Set(await getMany(`${p.url}/z`, 10))).toEqual(new Set(['a']));
        expect(b.traffic()).toHaveLength(before);
      });
    } finally {
      await closeAll([a, b]);
    }
  });

  test('timeouts (network failures) need unhealthy_threshold in a row; expected_statuses is honoured', async () => {
    let mode: 'ok' | 'hang' = 'ok';
    const a = await hcUpstream('a', () => (mode === 'hang' ? 'hang' : 204));
    try {
      const hc = healthCheck({
        timeout: '0.1s', interval: '0.3s', no_traffic_interval: '0.3s', unhealthy_threshold: 3,
        http_health_check: { path: HC_PATH, expected_statuses: [{ start: 200, end: 300 }] },
      });
      // Panic mode off: with Envoy's default 50 % the one failing host would still get the request.
      const noPanic = { common_lb_config: { healthy_panic_threshold: { value: 0 } } };
      await withProxy([cluster('backend', [a.port], { ...hc, ...noPanic })], [route('/', 'backend')], async (p) => {
        expect(await healthFlags(p, 'backend', a)).toBe('healthy'); // 204 is in [200, 300)
        mode = 'hang';
        await eventually('a is ejected', async () => (await healthFlags(p, 'backend', a)) === '/failed_active_hc');
        // Each failed check takes 0.4 s, so the count read right after the ejection is exact.
        expect(await statValue(p.adminUrl, 'cluster.backend.health_check.network_failure')).toBe(3);
        const r = await fetchText(`${p.url}/x`);
        expect(r.status).toBe(503);
        expect(r.body).toBe('no healthy upstream');
      });
    } finally {
      await a.close();
    }
  });

  test('a MIRROR cluster whose only host fails its checks: shadows are skipped without a connection', async () => {
    const primary = await hcUpstream('primary');
    const mirror = await hcUpstream('mirror', () => 503);
    try {
      await withProxy(
        [cluster('primary', [primary.port]), cluster('mirror', [mirror.port], healthCheck())],
        [route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })],
        async (p) => {
          expect(new Set(await getMany(`${p.url}/mirrored`, 5))).toEqual(new Set(['primary']));
          expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.skipped.no_healthy_host')).toBe(5);
          expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')).toBe(0);
          await sleep(150);
          expect(mirror.healthChecks().length).toBeGreaterThanOrEqual(1);
          expect(mirror.requests.every((r) => r.url === HC_PATH)).toBe(true);
          expect(await statValue(p.adminUrl, 'cluster.mirror.upstream_cx_total')).toBe(0);
          expect(await statValue(p.adminUrl, 'cluster.mirror.upstream_rq_total')).toBe(0);
        },
      );
    } finally {
      await closeAll([primary, mirror]);
    }
  });
});

describe('RING_HASH with route hash_policy', () => {
  const ringRoute = (clusterName: string, action: Json = {}) =>
    route('/', clusterName, { hash_policy: [{ header: { header_name: 'x-user' } }], ...action });

  test('the same x-user always lands on the same upstream; users spread over several', async () => {
    const ups = [await hcUpstream('u1'), await hcUpstream('u2'), await hcUpstream('u3')];
    try {
      await withProxy([cluster('ring', ups.map((u) => u.port), { lb_policy: 'RING_HASH' })], [ringRoute('ring')], async (p) => {
        const alice = await getMany(`${p.url}/a`, 30, () => ({ 'x-user': 'alice' }));
        expect(new Set(alice).size).toBe(1);

        const byUser = new Map<string, Set<string>>();
        for (let round = 0; round < 3; round++) {
          const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
          const bodies = await getMany(`${p.url}/b`, users.length, (i) => ({ 'x-user': users[i]! }));
          users.forEach((u, i) => byUser.set(u, (byUser.get(u) ?? new Set()).add(bodies[i]!)));
        }
        for (const [user, seen] of byUser) expect({ user, upstreams: seen.size }).toEqual({ user, upstreams: 1 });
        const used = new Set([...byUser.values()].flatMap((s) => [...s]));
        expect(used.size).toBeGreaterThanOrEqual(2);

        // No x-user: no hash key, so a random point on the ring; still answered.
        expect((await getMany(`${p.url}/c`, 5)).every((b) => ['u1', 'u2', 'u3'].includes(b))).toBe(true);
      });
    } finally {
      await closeAll(ups);
    }
  });

  test('with health checks, a failing host leaves the ring and its users move; most others stay', async () => {
    let downName = '';
    const ups = await Promise.all(['u1', 'u2', 'u3'].map((n) => hcUpstream(n, () => (n === downName ? 503 : 200))));
    try {
      const clusters = [cluster('ring', ups.map((u) => u.port), { lb_policy: 'RING_HASH', ...healthCheck() })];
      await withProxy(clusters, [ringRoute('ring')], async (p) => {
        const users = Array.from({ length: 30 }, (_, i) => `user-${i}`);
        const before = await getMany(`${p.url}/a`, users.length, (i) => ({ 'x-user': users[i]! }));
        downName = before[0]!;
        const down = ups.find((u) => u.name === downName)!;
        await eventually('the host is ejected', async () => (await healthFlags(p, 'ring', down)) === '/failed_active_hc');
        const after = await getMany(`${p.url}/b`, users.length, (i) => ({ 'x-user': users[i]! }));
        expect(after).not.toContain(downName);
        // Envoy rebuilds the ring over the healthy hosts (their point counts grow), so a few of the
        // other users may move as well; most stay where they were.
        const others = users.map((_, i) => i).filter((i) => before[i] !== downName);
        const stayed = others.filter((i) => after[i] === before[i]);
        expect(stayed.length / others.length).toBeGreaterThanOrEqual(0.5);
      });
    } finally {
      await closeAll(ups);
    }
  });

  test('a RING_HASH mirror cluster gets its shadows (no hash key on the shadow side)', async () => {
    const primary = await hcUpstream('primary');
    const mirrors = [await hcUpstream('m1'), await hcUpstream('m2')];
    try {
      await withProxy(
        [cluster('primary', [primary.port]), cluster('mirror', mirrors.map((m) => m.port), { lb_policy: 'RING_HASH' })],
        [ringRoute('primary', { request_mirror_policies: [{ cluster: 'mirror' }] })],
        async (p) => {
          await getMany(`${p.url}/m`, 20, (i) => ({ 'x-user': `user-${i % 3}` }));
          await eventually('20 shadows arrived', () => mirrors.reduce((n, m) => n + m.traffic().length, 0) >= 20);
          expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')).toBe(20);
          expect(mirrors.every((m) => m.traffic().every((r) => r.url === '/m'))).toBe(true);
        },
      );
    } finally {
      await closeAll([primary, ...mirrors]);
    }
  });
});
