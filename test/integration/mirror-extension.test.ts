import * as fs from 'node:fs';
import type { ServerResponse } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { consistentSample } from '../../src/shadow/sample';
import { route } from '../harness/bootstrap';
import { type Json, awayFromWindowEdge, extRoute, perRoute, sendMany, until, withRig } from '../harness/mirror-ext';
import { sleep } from '../harness/upstream';

// The mirror filter's extended policies end to end, one behaviour per test: real upstreams and an
// in-process sidecar on 127.0.0.1, each started and stopped by handle. The same config over xDS:
// mirror-extension-xds.test.ts; Redis budgets and sidecar processes: mirror-extension-redis.test.ts.

const PM = { primary: {}, mirror: {} };
const EXAMPLE = path.resolve(__dirname, '../../examples/hooks/compare-and-tag.ts');
/** One catch-all route to `primary` carrying `policies`. */
const one = (...policies: Json[]) => () => ({ routes: [extRoute('/', 'primary', policies)] });
/** The same, with hook modules allowed from `dirs` (--hooks-dir). */
const oneWithHooks = (dirs: string[], ...policies: Json[]) => () => ({ routes: [extRoute('/', 'primary', policies)], hookDirs: dirs });
const EXAMPLES_DIR = path.dirname(EXAMPLE);
const urls = (u: { requests: ReadonlyArray<{ url: string }> }): string[] => u.requests.map((r) => r.url).sort();

describe('sampling', () => {
  test('every_nth: 3 mirrors exactly the 1st, 4th and 7th of 9 requests', () =>
    withRig(PM, one({ name: 'nth', cluster: 'mirror', sampling: { every_nth: 3 } }), async (r) => {
      for (let i = 0; i < 9; i++) expect((await r.get(`/n/${i}`)).body).toBe('primary');
      await r.up.mirror!.waitForRequests(3);
      await sleep(100);
      expect(urls(r.up.mirror!)).toEqual(['/n/0', '/n/3', '/n/6']);
      expect(await r.stat('mirror_policy.nth.sent')).toBe(3);
      expect(await r.stat('mirror_policy.nth.skipped.sampling')).toBe(6);
      expect(await r.stat('cluster.mirror.shadow.skipped.sampling')).toBe(6);
    }));

  test('consistent on a header: each key is mirrored always or never, as its hash decides', () => {
    const fraction = { numerator: 50, denominator: 'HUNDRED' };
    return withRig(PM, one({ name: 'byuser', cluster: 'mirror', sampling: { consistent: { header: 'x-user', fraction } } }), async (r) => {
      const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
      for (let round = 0; round < 3; round++) for (const u of users) await r.get('/c', { headers: { 'x-user': u } });
      const expected = users.filter((u) => consistentSample(u, { numerator: 50, denominator: 100 }));
      expect(expected.length).toBeGreaterThan(0);
      expect(expected.length).toBeLessThan(users.length);
      await r.up.mirror!.waitForRequests(expected.length * 3);
      await sleep(100);
      const perUser = new Map<string, number>();
      for (const q of r.up.mirror!.requests) perUser.set(String(q.headers['x-user']), (perUser.get(String(q.headers['x-user'])) ?? 0) + 1);
      expect([...perUser.keys()].sort()).toEqual([...expected].sort());
      expect([...perUser.values()].every((n) => n === 3)).toBe(true);
    });
  });

  test('random: 25 % of 400 requests are mirrored, within tolerance', () =>
    withRig(PM, one({ name: 'rnd', cluster: 'mirror', sampling: { random: { default_value: { numerator: 25, denominator: 'HUNDRED' } } } }), async (r) => {
      await sendMany(400, 8, async () => void (await r.get('/r')));
      const sent = await r.stat('mirror_policy.rnd.sent');
      expect(sent + (await r.stat('mirror_policy.rnd.skipped.sampling'))).toBe(400);
      // Binomial(400, 0.25): mean 100, sd 8.7; 60..140 is more than 4.5 sd either way.
      expect(sent).toBeGreaterThanOrEqual(60);
      expect(sent).toBeLessThanOrEqual(140);
      await r.up.mirror!.waitForRequests(sent);
    }));
});

test('limit count 2 per 60 s (local): exactly 2 of 6 requests are mirrored, 4 counted as limited', () =>
  withRig(PM, one({ name: 'budget', cluster: 'mirror', limit: { count: 2, time_window: '60s' } }), async (r) => {
    await awayFromWindowEdge(60_000);
    for (let i = 0; i < 6; i++) expect((await r.get(`/l/${i}`)).status).toBe(200);
    await r.up.mirror!.waitForRequests(2);
    await sleep(150);
    expect(urls(r.up.mirror!)).toEqual(['/l/0', '/l/1']);
    expect(await r.stat('mirror_policy.budget.skipped.limited')).toBe(4);
    expect(await r.stat('cluster.mirror.shadow.skipped.limited')).toBe(4);
  }));

test('host target: a URL with no cluster defined receives the shadow', () =>
  withRig({ primary: {}, other: {} }, (ports) => ({ routes: [extRoute('/', 'primary', [{ name: 'h', host: `http://127.0.0.1:${ports.other}` }])] }), async (r) => {
    await r.get('/to-host?q=1', { headers: { host: 'app.local' } });
    const [shadow] = await r.up.other!.waitForRequests(1);
    expect(shadow!.url).toBe('/to-host?q=1');
    expect(shadow!.headers.host).toBe('app.local-shadow');
    expect(await r.stat(`cluster.host:http://127.0.0.1:${r.up.other!.port}.shadow.succeeded.2xx`)).toBe(1);
  }));

test('host target by name: the first shadow waits for the name to resolve instead of being lost', () =>
  withRig({ primary: {}, other: {} }, (ports) => ({ routes: [extRoute('/', 'primary', [{ name: 'hn', host: `http://localhost:${ports.other}` }])] }), async (r) => {
    await r.get('/first');
    await r.get('/second');
    await r.up.other!.waitForRequests(2);
    expect(urls(r.up.other!)).toEqual(['/first', '/second']);
    expect(await r.stat(`cluster.host:http://localhost:${r.up.other!.port}.shadow.skipped.no_healthy_host`)).toBe(0);
  }));

test('cluster_header target: the header names the mirror cluster; without it, skipped.missing_header', () =>
  withRig(PM, one({ name: 'ch', cluster_header: 'x-mirror-cluster', allowed_clusters: { names: ['mirror'] } }), async (r) => {
    await r.get('/named', { headers: { 'x-mirror-cluster': 'mirror' } });
    await r.get('/unnamed');
    await r.up.mirror!.waitForRequests(1);
    await sleep(100);
    expect(urls(r.up.mirror!)).toEqual(['/named']);
    expect(await r.stat('cluster.header:x-mirror-cluster.shadow.skipped.missing_header')).toBe(1);
  }));

describe('sync mode', () => {
  const SYNC = { primary: {}, mirror: { delayMs: 200 }, slow: { delayMs: 5000 } };
  const routes = () => ({
    routes: [
      extRoute('/fast', 'primary', [{ name: 'sync200', cluster: 'mirror', mode: 'SYNC', sync_timeout: '1s' }]),
      extRoute('/slow', 'primary', [{ name: 'sync5s', cluster: 'slow', mode: 'SYNC', sync_timeout: '0.3s' }]),
    ],
  });

  test('the primary response waits for a 200 ms shadow and is still the primary\'s', () =>
    withRig(SYNC, routes, async (r) => {
      const res = await r.get('/fast');
      expect(res.body).toBe('primary');
      expect(res.ms).toBeGreaterThanOrEqual(190);
      expect(r.up.mirror!.requests).toHaveLength(1);
      expect(await r.stat('mirror_policy.sync200.succeeded.2xx')).toBe(1);
    }));

  test('the primary gives up on a 5 s shadow at sync_timeout (0.3 s)', () =>
    withRig(SYNC, routes, async (r) => {
      const res = await r.get('/slow');
      expect(res.body).toBe('primary');
      expect(res.ms).toBeGreaterThanOrEqual(290);
      expect(res.ms).toBeLessThan(2000);
      expect(await r.stat('mirror_policy.sync5s.sync_timed_out')).toBe(1);
      expect(r.up.slow!.requests).toHaveLength(1);
    }));
});

describe('body', () => {
  test('forward: false sends the shadow without the body; the primary gets it', () =>
    withRig(PM, one({ name: 'nobody', cluster: 'mirror', body: { forward: false } }), async (r) => {
      await r.get('/b', { method: 'POST', body: 'hello body' });
      const [shadow] = await r.up.mirror!.waitForRequests(1);
      expect(shadow!.method).toBe('POST');
      expect(shadow!.body.length).toBe(0);
      expect(r.up.primary!.requests[0]!.body.toString()).toBe('hello body');
    }));

  test('forward (default) sends the body to the shadow too', () =>
    withRig(PM, one({ name: 'withbody', cluster: 'mirror' }), async (r) => {
      await r.get('/b', { method: 'PUT', body: 'x'.repeat(3000) });
      const [shadow] = await r.up.mirror!.waitForRequests(1);
      expect(shadow!.body.toString()).toBe('x'.repeat(3000));
    }));

  test('over max_bytes the shadow is dropped and counted; the primary streams on untouched', () =>
    withRig(PM, one({ name: 'cap', cluster: 'mirror', body: { max_bytes: 4096 } }), async (r) => {
      const big = Buffer.alloc(64 * 1024, 'z');
      expect((await r.get('/big', { method: 'POST', body: big })).body).toBe('primary');
      expect(r.up.primary!.requests[0]!.body.equals(big)).toBe(true);
      await until('dropped.body_too_large', async () => (await r.stat('mirror_policy.cap.dropped.body_too_large')) === 1);
      expect(await r.stat('cluster.mirror.shadow.dropped.body_too_large')).toBe(1);
      await sleep(100);
      expect(r.up.mirror!.requests.filter((q) => q.complete)).toHaveLength(0);
      // A body under the cap is mirrored.
      await r.get('/small', { method: 'POST', body: 'fits' });
      const done = await r.up.mirror!.waitForRequests(1);
      expect(done.find((q) => q.complete)!.body.toString()).toBe('fits');
    }));

  test('over max_bytes while a mirrorRewrite hook holds the body: dropped and counted the same way', () =>
    withRig(PM, oneWithHooks([EXAMPLES_DIR], { name: 'capr', cluster: 'mirror', body: { max_bytes: 4096 }, hooks: { module: EXAMPLE } }), async (r) => {
      const big = Buffer.alloc(64 * 1024, 'z');
      expect((await r.get('/big', { method: 'POST', body: big })).body).toBe('primary');
      expect(r.up.primary!.requests[0]!.body.equals(big)).toBe(true);
      await until('dropped.body_too_large', async () => (await r.stat('mirror_policy.capr.dropped.body_too_large')) === 1);
      expect(await r.stat('mirror_policy.capr.dropped.body_cap')).toBe(0);
      await sleep(100);
      expect(r.up.mirror!.requests).toHaveLength(0);
    }));
});

describe('per-mirror timeouts', () => {
  test('read: a shadow whose response is idle past 0.2 s is timed out', () =>
    withRig({ primary: {}, mirror: { delayMs: 1500 } }, one({ name: 'rd', cluster: 'mirror', timeouts: { read: '0.2s' } }), async (r) => {
      const started = Date.now();
      expect((await r.get('/t')).body).toBe('primary');
      await until('timed_out', async () => (await r.stat('mirror_policy.rd.timed_out')) === 1, 1200);
      // Well before the mirror's 1.5 s answer (and not on undici's ~1 s timer tick).
      expect(Date.now() - started).toBeLessThan(800);
      expect(await r.stat('cluster.mirror.shadow.timed_out')).toBe(1);
    }));

  test('independent of the route\'s: with its own timeouts a shadow outlives a 0.1 s route timeout; without, it inherits it', () =>
    withRig({ primary: {}, mirror: { delayMs: 400 } }, () => ({
      routes: [
        extRoute('/own', 'primary', [{ name: 'own', cluster: 'mirror', timeouts: { read: '2s' } }], { timeout: '0.1s' }),
        extRoute('/inherit', 'primary', [{ name: 'inherit', cluster: 'mirror' }], { timeout: '0.1s' }),
      ],
    }), async (r) => {
      await r.get('/own');
      await r.get('/inherit');
      await until('both ended', async () => (await r.stat('mirror_policy.own.succeeded.2xx')) + (await r.stat('mirror_policy.inherit.timed_out')) === 2, 3000);
      expect(await r.stat('mirror_policy.own.timed_out')).toBe(0);
      expect(await r.stat('mirror_policy.inherit.succeeded.2xx')).toBe(0);
    }));

  test('connect: a shadow that gets no connection within 0.2 s is given up (mirror limited to one connection)', () =>
    withRig({ primary: {}, mirror: { delayMs: 1500 } }, () => ({
      routes: [extRoute('/', 'primary', [{ name: 'cn', cluster: 'mirror', timeouts: { connect: '0.2s' } }])],
      clusterExtra: { mirror: { circuit_breakers: { thresholds: [{ max_connections: 1 }] } } },
    }), async (r) => {
      await r.get('/first');
      await r.up.mirror!.waitForRequests(1, 2000, true);
      await r.get('/second');
      await until('second timed out', async () => (await r.stat('mirror_policy.cn.timed_out')) === 1, 1000);
      await until('first answered', async () => (await r.stat('mirror_policy.cn.succeeded.2xx')) === 1, 3000);
      await sleep(100);
      expect(urls(r.up.mirror!)).toEqual(['/first']);
    }));

  test('send: a body still uploading after 0.2 s times the shadow out; the primary gets it all', () =>
    withRig(PM, one({ name: 'snd', cluster: 'mirror', timeouts: { send: '0.2s' } }), async (r) => {
      async function* slowUpload(): AsyncGenerator<Buffer> {
        yield Buffer.alloc(1000, 'a');
        await sleep(600);
        yield Buffer.alloc(1000, 'b');
      }
      expect((await r.get('/up', { method: 'POST', body: Readable.from(slowUpload()) })).body).toBe('primary');
      expect(r.up.primary!.requests[0]!.body.length).toBe(2000);
      expect(await r.stat('mirror_policy.snd.timed_out')).toBe(1);
      expect(r.up.mirror!.requests.filter((q) => q.complete)).toHaveLength(0);
    }));
});

test('retry: a flaky mirror (503, 503, then 200) is reached with count 2 on_5xx', () => {
  let calls = 0;
  const flaky = { respond: (_q: unknown, res: ServerResponse) => { res.writeHead(++calls <= 2 ? 503 : 200); res.end(); } };
  return withRig({ primary: {}, mirror: flaky }, one({ name: 'rt', cluster: 'mirror', retry: { count: 2, on_5xx: true } }), async (r) => {
    await r.get('/flaky');
    await r.up.mirror!.waitForRequests(3);
    await until('succeeded', async () => (await r.stat('mirror_policy.rt.succeeded.2xx')) === 1);
    expect(await r.stat('mirror_policy.rt.retried')).toBe(2);
    expect(await r.stat('mirror_policy.rt.sent')).toBe(1);
  });
});

describe('path', () => {
  test('REPLACE (default): the mirror gets the policy\'s path, query kept', () =>
    withRig(PM, one({ name: 'rep', cluster: 'mirror', path: '/v2/mirror' }), async (r) => {
      await r.get('/api/items?x=1');
      expect((await r.up.mirror!.waitForRequests(1))[0]!.url).toBe('/v2/mirror?x=1');
      expect(r.up.primary!.requests[0]!.url).toBe('/api/items?x=1');
    }));

  test('PREFIX: the policy\'s path goes before the request\'s', () =>
    withRig(PM, one({ name: 'pre', cluster: 'mirror', path: '/shadow', path_concat_mode: 'PREFIX' }), async (r) => {
      await r.get('/api/items?x=1');
      expect((await r.up.mirror!.waitForRequests(1))[0]!.url).toBe('/shadow/api/items?x=1');
    }));
});

test('marker_header: the shadow carries the original Host in x-mirrored-from', () =>
  withRig(PM, one({ name: 'mk', cluster: 'mirror', marker_header: 'x-mirrored-from' }), async (r) => {
    await r.get('/m', { headers: { host: 'shop.example:8080' } });
    const [shadow] = await r.up.mirror!.waitForRequests(1);
    expect(shadow!.headers['x-mirrored-from']).toBe('shop.example:8080');
    expect(shadow!.headers.host).toBe('shop.example-shadow:8080');
    expect(r.up.primary!.requests[0]!.headers['x-mirrored-from']).toBeUndefined();
  }));

test('request_headers_mutations: append and remove on the shadow only', () =>
  withRig(PM, one({
    name: 'mut', cluster: 'mirror',
    request_headers_mutations: [{ append: { header: { key: 'x-shadow', value: 'yes' } } }, { remove: 'authorization' }],
  }), async (r) => {
    await r.get('/h', { headers: { authorization: 'Bearer secret' } });
    const [shadow] = await r.up.mirror!.waitForRequests(1);
    expect(shadow!.headers['x-shadow']).toBe('yes');
    expect(shadow!.headers.authorization).toBeUndefined();
    expect(r.up.primary!.requests[0]!.headers.authorization).toBe('Bearer secret');
    expect(r.up.primary!.requests[0]!.headers['x-shadow']).toBeUndefined();
  }));

test('methods: only the listed methods are mirrored; others counted as skipped.method', () =>
  withRig(PM, one({ name: 'meth', cluster: 'mirror', methods: ['POST'] }), async (r) => {
    await r.get('/get');
    await r.get('/post', { method: 'POST', body: 'p' });
    await r.up.mirror!.waitForRequests(1);
    await sleep(100);
    expect(r.up.mirror!.requests.map((q) => `${q.method} ${q.url}`)).toEqual(['POST /post']);
    expect(await r.stat('mirror_policy.meth.skipped.method')).toBe(1);
  }));

test('Envoy\'s request_mirror_policies and an extended policy on one route both fire', () =>
  withRig({ primary: {}, envoyMirror: {}, extMirror: {} }, () => ({
    routes: [{ ...route('/', 'primary', { request_mirror_policies: [{ cluster: 'envoyMirror' }] }), typed_per_filter_config: perRoute([{ name: 'ext', cluster: 'extMirror', marker_header: 'x-mirrored-from' }]) }],
  }), async (r) => {
    await r.get('/both', { headers: { host: 'app.local' } });
    const [envoyShadow] = await r.up.envoyMirror!.waitForRequests(1);
    const [extShadow] = await r.up.extMirror!.waitForRequests(1);
    expect(envoyShadow!.headers.host).toBe('app.local-shadow');
    expect(envoyShadow!.headers['x-mirrored-from']).toBeUndefined();
    expect(extShadow!.headers['x-mirrored-from']).toBe('app.local');
    expect(await r.stat('cluster.envoyMirror.shadow.sent')).toBe(1);
    expect(await r.stat('cluster.extMirror.shadow.sent')).toBe(1);
  }));

describe('hooks', () => {
  const UPS = { primary: {}, mirror: { name: 'shadow says 42' } };
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-hooks-'));
    fs.writeFileSync(path.join(dir, 'throws.js'), "exports.beforeMirror = () => { throw new Error('boom'); };\n");
    fs.writeFileSync(path.join(dir, 'hangs.js'), 'exports.afterMirror = () => new Promise(() => {});\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('beforeMirror (example): a request with x-no-mirror is skipped and counted', () =>
    withRig(UPS, oneWithHooks([EXAMPLES_DIR], { name: 'hk', cluster: 'mirror', hooks: { module: EXAMPLE } }), async (r) => {
      await r.get('/skip-me', { headers: { 'x-no-mirror': '1' } });
      await r.get('/mirror-me');
      await r.up.mirror!.waitForRequests(1);
      await sleep(100);
      expect(urls(r.up.mirror!)).toEqual(['/mirror-me']);
      expect(await r.stat('mirror_policy.hk.skipped.hook')).toBe(1);
      expect(await r.stat('mirror_policy.hk.hook.beforeMirror.ok')).toBe(2);
    }));

  test('mirrorRewrite (example): the shadow is tagged x-mirror-rewritten: 1, the primary is not', () =>
    withRig(UPS, oneWithHooks([EXAMPLES_DIR], { name: 'hk', cluster: 'mirror', hooks: { module: EXAMPLE } }), async (r) => {
      await r.get('/tag', { method: 'POST', body: 'payload' });
      const [shadow] = await r.up.mirror!.waitForRequests(1);
      expect(shadow!.headers['x-mirror-rewritten']).toBe('1');
      expect(shadow!.body.toString()).toBe('payload');
      expect(r.up.primary!.requests[0]!.headers['x-mirror-rewritten']).toBeUndefined();
      expect(await r.stat('mirror_policy.hk.hook.mirrorRewrite.ok')).toBe(1);
    }));

  test('afterMirror (example, sync mode): the primary\'s response carries the mirror\'s status and body', () =>
    withRig(UPS, oneWithHooks([EXAMPLES_DIR], { name: 'hk', cluster: 'mirror', mode: 'SYNC', sync_timeout: '1s', hooks: { module: EXAMPLE } }), async (r) => {
      const res = await r.get('/compare');
      expect(res.body).toBe('primary');
      expect(res.headers['x-mirror-status']).toBe('200');
      expect(res.headers['x-mirror-body']).toBe('shadow says 42');
      expect(await r.stat('mirror_policy.hk.hook.afterMirror.ok')).toBe(1);
    }));

  test('a throwing beforeMirror skips the mirror (hook.beforeMirror.threw); the primary is fine', () =>
    withRig(UPS, oneWithHooks([dir], { name: 'boom', cluster: 'mirror', hooks: { module: 'throws.js' } }), async (r) => {
      expect((await r.get('/t')).body).toBe('primary');
      await until('threw', async () => (await r.stat('mirror_policy.boom.hook.beforeMirror.threw')) === 1);
      expect(await r.stat('mirror_policy.boom.skipped.hook')).toBe(1);
      await sleep(100);
      expect(r.up.mirror!.requests).toHaveLength(0);
    }));

  test('a hanging afterMirror is abandoned at hooks.timeout (0.1 s): the sync primary answers without its headers', () =>
    withRig(UPS, oneWithHooks([dir], { name: 'hang', cluster: 'mirror', mode: 'SYNC', sync_timeout: '3s', hooks: { module: 'hangs', timeout: '0.1s' } }), async (r) => {
      const res = await r.get('/h');
      expect(res.body).toBe('primary');
      expect(res.ms).toBeGreaterThanOrEqual(90);
      expect(res.ms).toBeLessThan(1500);
      expect(res.headers['x-mirror-status']).toBeUndefined();
      expect(r.up.mirror!.requests).toHaveLength(1);
      expect(await r.stat('mirror_policy.hang.hook.afterMirror.timed_out')).toBe(1);
      expect(await r.stat('mirror_policy.hang.sync_timed_out')).toBe(0);
    }));
});

test('health-check fast-fail: a mirror host failing its checks gets no shadow (skipped.no_healthy_host)', () => {
  const failingHc = { respond: (q: { url: string }, res: ServerResponse) => { res.writeHead(q.url === '/healthz' ? 503 : 200); res.end(); } };
  return withRig({ primary: {}, mirror: failingHc }, () => ({
    routes: [extRoute('/', 'primary', [{ name: 'hc', cluster: 'mirror' }])],
    clusterExtra: { mirror: { health_checks: [{ timeout: '0.5s', interval: '1s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: '/healthz' } }] } },
  }), async (r) => {
    const started = Date.now();
    for (let i = 0; i < 3; i++) expect((await r.get(`/x/${i}`)).body).toBe('primary');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await r.stat('cluster.mirror.shadow.skipped.no_healthy_host')).toBe(3);
    expect(await r.stat('mirror_policy.hc.skipped.no_healthy_host')).toBe(3);
    expect(await r.stat('cluster.mirror.health_check.failure')).toBeGreaterThanOrEqual(1);
    await sleep(100);
    expect(r.up.mirror!.requests.length).toBeGreaterThanOrEqual(1);
    expect(r.up.mirror!.requests.every((q) => q.url === '/healthz')).toBe(true);
  });
});
