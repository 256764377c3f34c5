import type * as http from 'node:http';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type RecordedRequest, type Upstream, closedPort, sleep, startUpstream } from '../harness/upstream';

// Outlier detection and the panic threshold end to end: real upstreams on 127.0.0.1, each test
// with its own proxy. Ejection times are short; assertions on time are lower bounds only (a
// host cannot come back before its ejection time), with generous upper limits to wait.

type Json = Record<string, unknown>;

const HC_PATH = '/healthz';

/** An upstream answering its name with the status `status()` gives at that moment. */
interface NamedUpstream extends Upstream {
  readonly name: string;
  traffic(): RecordedRequest[];
}

async function named(name: string, status: () => number = () => 200): Promise<NamedUpstream> {
  const up = await startUpstream({
    name,
    respond: (req: RecordedRequest, res: http.ServerResponse) => {
      const code = req.url === HC_PATH ? 200 : status();
      res.writeHead(code, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) });
      res.end(name);
    },
  });
  return Object.assign(up, { name, traffic: () => up.requests.filter((r) => r.url !== HC_PATH) });
}

/** Outlier detection (Envoy YAML) that a test can act on quickly; `extra` overrides. */
function outlier(extra: Json = {}): Json {
  return { outlier_detection: { consecutive_5xx: 3, interval: '0.1s', base_ejection_time: '0.3s', max_ejection_percent: 50, ...extra } };
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

async function healthFlags(p: TestProxy, clusterName: string, port: number): Promise<string> {
  const { body } = await fetchText(`${p.adminUrl}/clusters`);
  const prefix = `${clusterName}::127.0.0.1:${port}::health_flags::`;
  return body.split('\n').find((l) => l.startsWith(prefix))?.slice(prefix.length) ?? '(absent)';
}

/** Sends `n` GETs one after another; returns status and body of each. */
async function getMany(url: string, n: number): Promise<Array<{ status: number; body: string }>> {
  const out: Array<{ status: number; body: string }> = [];
  for (let i = 0; i < n; i++) {
    const r = await fetchText(url);
    out.push({ status: r.status, body: r.body });
  }
  return out;
}

const stat = (p: TestProxy, name: string): Promise<number> => statValue(p.adminUrl, name);

describe('consecutive errors on the primary path', () => {
  test('a host answering 5xx three times in a row is ejected, its traffic goes to the other host, and it returns after the ejection time', async () => {
    let aStatus = 500;
    const a = await named('a', () => aStatus);
    const b = await named('b');
    try {
      await withProxy([cluster('backend', [a.port, b.port], outlier({ base_ejection_time: '0.5s' }))], [route('/', 'backend')], async (p) => {
        // 1. Round robin: six requests give a its three 5xx.
        const started = Date.now();
        const first = await getMany(`${p.url}/x`, 6);
        expect(first.filter((r) => r.body === 'a').map((r) => r.status)).toEqual([500, 500, 500]);
        expect(await healthFlags(p, 'backend', a.port)).toBe('/failed_outlier_check');
        expect(await healthFlags(p, 'backend', b.port)).toBe('healthy');
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_active')).toBe(1);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_detected_consecutive_5xx')).toBe(1);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_enforced_consecutive_5xx')).toBe(1);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_enforced_total')).toBe(1);
        // Envoy's /clusters lines for a cluster with outlier detection (no success rate computed: too few hosts).
        const text = (await fetchText(`${p.adminUrl}/clusters`)).body.split('\n');
        expect(text.filter((l) => l.startsWith('backend::outlier::'))).toEqual([
          'backend::outlier::success_rate_average::-1', 'backend::outlier::success_rate_ejection_threshold::-1',
          'backend::outlier::local_origin_success_rate_average::-1', 'backend::outlier::local_origin_success_rate_ejection_threshold::-1',
        ]);
        expect(text.indexOf('backend::outlier::success_rate_average::-1')).toBe(text.indexOf('backend::observability_name::backend') + 1);
        const json = JSON.parse((await fetchText(`${p.adminUrl}/clusters?format=json`)).body) as {
          cluster_statuses: Array<{ host_statuses: Array<{ address: { socket_address: { port_value: number } }; health_status: Json }> }>;
        };
        const aStatusJson = json.cluster_statuses[0]!.host_statuses.find((h) => h.address.socket_address.port_value === a.port)!;
        expect(aStatusJson.health_status).toMatchObject({ failed_outlier_check: true });

        // 2. While a is out, b takes everything (no panic: half the hosts are healthy). A now
        //    answers 200 and cannot be ejected again, so if it is still out after the batch, it
        //    was out all along (on a slow machine its 0.5 s may be over, and the check moot).
        aStatus = 200;
        const during = a.traffic().length;
        const whileOut = await getMany(`${p.url}/y`, 8);
        if (await healthFlags(p, 'backend', a.port) === '/failed_outlier_check') {
          expect(whileOut.every((r) => r.status === 200 && r.body === 'b')).toBe(true);
          expect(a.traffic()).toHaveLength(during);
        }

        // 3. Back after base_ejection_time, never sooner; then both hosts share the traffic again.
        await eventually('a returns', async () => (await healthFlags(p, 'backend', a.port)) === 'healthy');
        expect(Date.now() - started).toBeGreaterThanOrEqual(500);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_active')).toBe(0);
        const after = await getMany(`${p.url}/z`, 6);
        expect(new Set(after.map((r) => r.body))).toEqual(new Set(['a', 'b']));
      });
    } finally {
      await closeAll([a, b]);
    }
  });

  test('connection failures are local-origin errors: with split_external_local_origin_errors, consecutive_local_origin_failure ejects a dead host', async () => {
    const dead = await closedPort();
    const b = await named('b');
    try {
      const od = outlier({ split_external_local_origin_errors: true, consecutive_local_origin_failure: 2, base_ejection_time: '30s' });
      await withProxy([cluster('backend', [dead, b.port], od)], [route('/', 'backend')], async (p) => {
        const first = await getMany(`${p.url}/x`, 4); // dead, b, dead, b
        expect(first.map((r) => r.status)).toEqual([503, 200, 503, 200]);
        expect(await healthFlags(p, 'backend', dead)).toBe('/failed_outlier_check');
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_enforced_consecutive_local_origin_failure')).toBe(1);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_detected_consecutive_5xx')).toBe(0);
        const after = await getMany(`${p.url}/y`, 6);
        expect(after.every((r) => r.status === 200 && r.body === 'b')).toBe(true);
      });
    } finally {
      await b.close();
    }
  });

  test('max_ejection_percent: of three failing hosts only one is ejected, the others are counted as overflow', async () => {
    const ups = await Promise.all(['a', 'b', 'c'].map((n) => named(n, () => 500)));
    try {
      const clusters = [cluster('backend', ups.map((u) => u.port), outlier({ max_ejection_percent: 34, base_ejection_time: '30s' }))];
      await withProxy(clusters, [route('/', 'backend')], async (p) => {
        await getMany(`${p.url}/x`, 15);
        const flags = await Promise.all(ups.map((u) => healthFlags(p, 'backend', u.port)));
        expect(flags.filter((f) => f === '/failed_outlier_check')).toHaveLength(1);
        expect(flags.filter((f) => f === 'healthy')).toHaveLength(2);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_active')).toBe(1);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_overflow')).toBeGreaterThanOrEqual(2);
        expect(await stat(p, 'cluster.backend.lb_healthy_panic')).toBe(0);
        const out = ups[flags.indexOf('/failed_outlier_check')]!;
        const seen = out.traffic().length;
        await getMany(`${p.url}/y`, 6);
        expect(out.traffic()).toHaveLength(seen);
      });
    } finally {
      await closeAll(ups);
    }
  });
});

describe('every balancer leaves ejected hosts out', () => {
  test.each(['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST', 'RING_HASH'])('%s', async (lbPolicy) => {
    const a = await named('a', () => 500);
    const b = await named('b');
    try {
      const od = outlier({ consecutive_5xx: 1, base_ejection_time: '30s' });
      await withProxy([cluster('backend', [a.port, b.port], { lb_policy: lbPolicy, ...od })], [route('/', 'backend')], async (p) => {
        // 30 requests: a is picked at some point (all but surely), answers its one 5xx and is out.
        const bodies = (await getMany(`${p.url}/x`, 30)).map((r) => r.body);
        expect(bodies.filter((x) => x === 'a')).toHaveLength(1);
        expect(bodies.slice(bodies.indexOf('a') + 1).every((x) => x === 'b')).toBe(true);
        expect(await healthFlags(p, 'backend', a.port)).toBe('/failed_outlier_check');
      });
    } finally {
      await closeAll([a, b]);
    }
  });
});

describe('success rate', () => {
  test('a host far below the others\' success rate is ejected at an interval (consecutive 5xx out of the way)', async () => {
    const ups = await Promise.all(['bad', 'g1', 'g2', 'g3', 'g4'].map((n) => named(n, () => (n === 'bad' ? 500 : 200))));
    try {
      const od = outlier({
        consecutive_5xx: 100_000, interval: '0.5s', max_ejection_percent: 20, base_ejection_time: '30s',
        success_rate_minimum_hosts: 5, success_rate_request_volume: 5,
      });
      await withProxy([cluster('backend', ups.map((u) => u.port), od)], [route('/', 'backend')], async (p) => {
        // Traffic until one interval has held 5 requests per host: rounds of 25, spread over the
        // intervals (a loaded runner may fire the interval late), bounded by 200 rounds and 15 s.
        const deadline = Date.now() + 15_000;
        for (let round = 0; round < 200 && Date.now() < deadline && (await healthFlags(p, 'backend', ups[0]!.port)) !== '/failed_outlier_check'; round++) {
          await getMany(`${p.url}/x`, 25);
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(await healthFlags(p, 'backend', ups[0]!.port)).toBe('/failed_outlier_check');
        for (const g of ups.slice(1)) expect(await healthFlags(p, 'backend', g.port)).toBe('healthy');
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_enforced_success_rate')).toBe(1);
        expect(await stat(p, 'cluster.backend.outlier_detection.ejections_detected_consecutive_5xx')).toBe(0);
      });
    } finally {
      await closeAll(ups);
    }
  });
});

describe('panic threshold', () => {
  test('every host ejected: like Envoy, the balancer uses all of them (lb_healthy_panic); healthy_panic_threshold 0 answers 503 instead', async () => {
    let status = 500;
    const ups = await Promise.all(['a', 'b'].map((n) => named(n, () => status)));
    try {
      const od = outlier({ max_ejection_percent: 100, base_ejection_time: '30s' });
      const clusters = [
        cluster('panics', ups.map((u) => u.port), od),
        cluster('strict', ups.map((u) => u.port), { ...od, common_lb_config: { healthy_panic_threshold: { value: 0 } } }),
      ];
      await withProxy(clusters, [route('/strict', 'strict'), route('/', 'panics')], async (p) => {
        await getMany(`${p.url}/x`, 6);
        await getMany(`${p.url}/strict`, 6);
        for (const [name, u] of [['panics', ups[0]!], ['panics', ups[1]!], ['strict', ups[0]!], ['strict', ups[1]!]] as const) {
          expect(await healthFlags(p, name, u.port)).toBe('/failed_outlier_check');
        }
        status = 200;
        const before = ups.map((u) => u.traffic().length);
        const panicked = await getMany(`${p.url}/x`, 10);
        expect(panicked.every((r) => r.status === 200)).toBe(true);
        expect(new Set(panicked.map((r) => r.body))).toEqual(new Set(['a', 'b']));
        expect(ups.map((u, i) => u.traffic().length - before[i]!)).toEqual([5, 5]);
        expect(await stat(p, 'cluster.panics.lb_healthy_panic')).toBe(10);

        const strict = await getMany(`${p.url}/strict`, 3);
        expect(strict).toEqual(Array(3).fill({ status: 503, body: 'no healthy upstream' }));
        expect(await stat(p, 'cluster.strict.upstream_cx_none_healthy')).toBe(3);
        expect(await stat(p, 'cluster.strict.lb_healthy_panic')).toBe(0);
      });
    } finally {
      await closeAll(ups);
    }
  });

  test('active health checks: a single failing host is still used in panic mode (Envoy\'s default 50 %)', async () => {
    const a = await startUpstream({ respond: (req, res) => { res.writeHead(req.url === HC_PATH ? 503 : 200); res.end('a'); } });
    try {
      const hc = { health_checks: [{ timeout: '1s', interval: '0.1s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: HC_PATH } }] };
      await withProxy([cluster('backend', [a.port], hc)], [route('/', 'backend')], async (p) => {
        expect(await healthFlags(p, 'backend', a.port)).toBe('/failed_active_hc');
        const r = await fetchText(`${p.url}/x`);
        expect([r.status, r.body]).toEqual([200, 'a']);
        expect(await stat(p, 'cluster.backend.lb_healthy_panic')).toBe(1);
      });
    } finally {
      await a.close();
    }
  });

  test('a passing active health check brings an ejected host back at once; successful_active_health_check_uneject_host: false keeps it out', async () => {
    const a = await named('a', () => 500);
    const b = await named('b');
    try {
      const hc = { health_checks: [{ timeout: '1s', interval: '0.1s', no_traffic_interval: '0.1s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: HC_PATH } }] };
      const od = (keep: boolean): Json => outlier({ base_ejection_time: '30s', successful_active_health_check_uneject_host: !keep });
      const clusters = [cluster('back', [a.port, b.port], { ...hc, ...od(false) }), cluster('kept', [a.port, b.port], { ...hc, ...od(true) })];
      await withProxy(clusters, [route('/kept', 'kept'), route('/', 'back')], async (p) => {
        await getMany(`${p.url}/kept`, 6);
        await getMany(`${p.url}/x`, 6);
        // The 30 s ejection cannot be over: only the health check can bring it back.
        await eventually('back returns', async () => (await healthFlags(p, 'back', a.port)) === 'healthy');
        expect(await stat(p, 'cluster.back.outlier_detection.ejections_enforced_consecutive_5xx')).toBe(1);
        const checks = (await stat(p, 'cluster.kept.health_check.success'));
        await eventually('two more checks of kept', async () => (await stat(p, 'cluster.kept.health_check.success')) >= checks + 4);
        expect(await healthFlags(p, 'kept', a.port)).toBe('/failed_outlier_check');
      });
    } finally {
      await closeAll([a, b]);
    }
  });
});

describe('mirror clusters', () => {
  test('shadow results feed the mirror\'s detector; once all its hosts are ejected shadows are skipped at once, counted, the primary untouched', async () => {
    const primary = await named('primary');
    const mirror = await named('mirror', () => 500);
    try {
      const clusters = [
        cluster('primary', [primary.port], outlier({ consecutive_5xx: 1, max_ejection_percent: 100 })),
        cluster('mirror', [mirror.port], outlier({ consecutive_5xx: 2, max_ejection_percent: 100, base_ejection_time: '30s' })),
      ];
      await withProxy(clusters, [route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })], async (p) => {
        // 1. Two shadows reach the mirror (one at a time: each answered before the next request).
        for (let i = 1; i <= 2; i++) {
          expect(await fetchText(`${p.url}/m${i}`)).toMatchObject({ status: 200, body: 'primary' });
          await eventually(`shadow ${i} answered`, async () => (await stat(p, 'cluster.mirror.shadow.succeeded.5xx')) === i);
        }
        expect(await healthFlags(p, 'mirror', mirror.port)).toBe('/failed_outlier_check');
        expect(await stat(p, 'cluster.mirror.outlier_detection.ejections_enforced_consecutive_5xx')).toBe(1);

        // 2. Every later shadow is skipped without a connection; the client sees only the primary.
        const rest = await getMany(`${p.url}/later`, 5);
        expect(rest).toEqual(Array(5).fill({ status: 200, body: 'primary' }));
        expect(await stat(p, 'cluster.mirror.shadow.skipped.all_hosts_ejected')).toBe(5);
        expect(await stat(p, 'cluster.mirror.upstream_cx_none_healthy')).toBe(5);
        expect(await stat(p, 'cluster.mirror.shadow.sent')).toBe(2);
        await sleep(100);
        expect(mirror.traffic()).toHaveLength(2);
        expect(await healthFlags(p, 'primary', primary.port)).toBe('healthy');
        expect(await stat(p, 'cluster.primary.outlier_detection.ejections_active')).toBe(0);
      });
    } finally {
      await closeAll([primary, mirror]);
    }
  });
});
