import * as net from 'node:net';
import { request } from 'undici';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Mirror policies end to end, one Envoy behaviour per test: real sockets on 127.0.0.1, each test
// starts its own upstreams and proxy and stops them by handle.

type Json = Record<string, unknown>;
type Ups = Record<string, Upstream>;
const HPO_TYPE = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const HPO_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/**
 * Starts one recording upstream per name (answering with its name) and a proxy whose clusters
 * are those upstreams; `build` returns the route config (and optional per-cluster extras).
 */
async function withProxy(names: string[], build: (ports: Record<string, number>) => { rc: Json; clusterExtra?: Record<string, Json> },
  body: (p: TestProxy, up: Ups) => Promise<void>): Promise<void> {
  const up: Ups = {};
  try {
    for (const n of names) up[n] = await startUpstream({ name: n });
    const ports = Object.fromEntries(names.map((n) => [n, up[n]!.port]));
    const { rc, clusterExtra = {} } = build(ports);
    const p = await startProxy(bootstrap({
      listeners: [listener(rc)],
      clusters: names.map((n) => cluster(n, [ports[n]!], clusterExtra[n] ?? {})),
    }));
    try {
      await body(p, up);
    } finally {
      await p.stop();
    }
  } finally {
    for (const u of Object.values(up)) await u.close();
  }
}

/** One catch-all route to `primary` carrying `policies`. */
const simple = (policies: Json[], action: Json = {}) => () => ({ rc: routeConfig([route('/', 'primary', { request_mirror_policies: policies, ...action })]) });

/** No shadow went to `mirror`: nothing was counted as sent, and nothing arrived after a pause. */
async function expectNoShadow(p: TestProxy, mirror: Upstream, name: string, before = 0): Promise<void> {
  expect(await statValue(p.adminUrl, `cluster.${name}.shadow.sent`)).toBe(before);
  await sleep(150);
  expect(mirror.requests).toHaveLength(before);
}

/** Runs `n` calls of `fn`, at most `concurrency` at a time. */
async function sendMany(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/** Writes raw bytes to the listener; resolves with what comes back before the proxy closes. */
function rawExchange(port: number, text: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let got = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(got)}`)); }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => { got += d; });
    socket.on('error', () => undefined);
    socket.on('close', () => { clearTimeout(timer); resolve(got); });
  });
}

describe('Host header on the shadow', () => {
  test.each([
    ['localhost:10000', 'localhost-shadow:10000'],
    ['example.com', 'example.com-shadow'],
    ['127.0.0.1:8080', '127.0.0.1-shadow:8080'],
    ['[::1]:8080', '[::1]-shadow:8080'],
    ['[::1]', '[::1]-shadow'],
  ])('client Host %s → mirror sees %s, primary the original', async (host, shadowed) => {
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror' }]), async (p, up) => {
      const res = await fetchText(`${p.url}/h`, { headers: { host } });
      expect(res.status).toBe(200);
      expect(res.body).toBe('primary');
      const [shadow] = await up.mirror!.waitForRequests(1);
      expect(shadow!.headers.host).toBe(shadowed);
      expect(up.primary!.requests[0]!.headers.host).toBe(host);
    });
  });

  test('disable_shadow_host_suffix_append: the mirror sees the original Host', async () => {
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror', disable_shadow_host_suffix_append: true }]), async (p, up) => {
      await fetchText(`${p.url}/`, { headers: { host: 'localhost:10000' } });
      const [shadow] = await up.mirror!.waitForRequests(1);
      expect(shadow!.headers.host).toBe('localhost:10000');
    });
  });

  test('host_rewrite_literal on the policy: the mirror sees exactly that Host, no suffix', async () => {
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror', host_rewrite_literal: 'shadow.internal' }]), async (p, up) => {
      await fetchText(`${p.url}/`, { headers: { host: 'localhost:10000' } });
      const [shadow] = await up.mirror!.waitForRequests(1);
      expect(shadow!.headers.host).toBe('shadow.internal');
      expect(up.primary!.requests[0]!.headers.host).toBe('localhost:10000');
    });
  });
});

describe('shadow request headers', () => {
  test('request_headers_mutations apply in order, on the shadow only', async () => {
    const add = (key: string, value: string, append_action: string): Json => ({ append: { header: { key, value }, append_action } });
    const mutations = [
      add('x-a', 'two', 'APPEND_IF_EXISTS_OR_ADD'),
      add('x-b', 'new', 'OVERWRITE_IF_EXISTS_OR_ADD'),
      add('x-c', 'ignored', 'ADD_IF_ABSENT'),
      add('x-d', 'added', 'ADD_IF_ABSENT'),
      { remove: 'x-gone' },
      // Order matters: added, removed, added again.
      add('x-seq', 'first', 'APPEND_IF_EXISTS_OR_ADD'),
      { remove: 'x-seq' },
      add('x-seq', 'second', 'APPEND_IF_EXISTS_OR_ADD'),
    ];
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror', request_headers_mutations: mutations }]), async (p, up) => {
      const sent = { 'x-a': '1', 'x-b': '2', 'x-c': '3', 'x-gone': 'yes' };
      expect((await fetchText(`${p.url}/m`, { headers: sent })).status).toBe(200);
      const [shadow] = await up.mirror!.waitForRequests(1);
      const raw = (name: string): string[] => shadow!.rawHeaders.filter((_, i) => i % 2 === 1 && shadow!.rawHeaders[i - 1]!.toLowerCase() === name);
      expect(raw('x-a')).toEqual(['1', 'two']);
      expect(shadow!.headers).toMatchObject({ 'x-b': 'new', 'x-c': '3', 'x-d': 'added', 'x-seq': 'second' });
      expect(shadow!.headers['x-gone']).toBeUndefined();
      const primary = up.primary!.requests[0]!.headers;
      expect(primary).toMatchObject(sent);
      expect(primary['x-d']).toBeUndefined();
      expect(primary['x-seq']).toBeUndefined();
    });
  });

  test('shadows carry x-envoy-internal and the proxy address appended to x-forwarded-for', async () => {
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror' }]), async (p, up) => {
      await fetchText(`${p.url}/`, { headers: { 'x-forwarded-for': '1.2.3.4' } });
      const [shadow] = await up.mirror!.waitForRequests(1);
      expect(shadow!.headers['x-envoy-internal']).toBe('true');
      // Envoy's Utility::appendXff joins with a bare ',' (its utility_test: "10.0.0.1,127.0.0.1").
      expect(shadow!.headers['x-forwarded-for']).toBe('1.2.3.4,127.0.0.1');
      const primary = up.primary!.requests[0]!.headers;
      expect(primary['x-forwarded-for']).toBe('1.2.3.4');
      expect(primary['x-envoy-internal']).toBeUndefined();
    });
  });
});

describe('where policies come from', () => {
  test('route list beats vhost list beats route-config list; never merged', async () => {
    const policy = (c: string): Json[] => [{ cluster: c }];
    await withProxy(['primary', 'mRoute', 'mVhost', 'mConfig'], () => ({
      rc: {
        name: 'local_route',
        request_mirror_policies: policy('mConfig'),
        virtual_hosts: [
          {
            name: 'with-policies', domains: ['v.example'], request_mirror_policies: policy('mVhost'),
            routes: [route('/r', 'primary', { request_mirror_policies: policy('mRoute') }), route('/', 'primary')],
          },
          { name: 'plain', domains: ['*'], routes: [route('/', 'primary')] },
        ],
      },
    }), async (p, up) => {
      await fetchText(`${p.url}/r`, { headers: { host: 'v.example' } });
      await up.mRoute!.waitForRequests(1);
      await fetchText(`${p.url}/v`, { headers: { host: 'v.example' } });
      await up.mVhost!.waitForRequests(1);
      await fetchText(`${p.url}/c`, { headers: { host: 'other.example' } });
      await up.mConfig!.waitForRequests(1);
      await sleep(150);
      expect(up.mRoute!.requests.map((r) => r.url)).toEqual(['/r']);
      expect(up.mVhost!.requests.map((r) => r.url)).toEqual(['/v']);
      expect(up.mConfig!.requests.map((r) => r.url)).toEqual(['/c']);
      expect(up.primary!.requests).toHaveLength(3);
    });
  });

  test("cluster-level HttpProtocolOptions policies override the route's", async () => {
    const hpo = (policies: Json[]): Json => ({
      typed_extension_protocol_options: {
        [HPO_KEY]: { '@type': HPO_TYPE, explicit_http_config: { http_protocol_options: {} }, request_mirror_policies: policies },
      },
    });
    await withProxy(['primary', 'other', 'mRoute', 'mCluster'], () => ({
      rc: routeConfig([
        route('/c', 'primary', { request_mirror_policies: [{ cluster: 'mRoute' }] }),
        route('/', 'other', { request_mirror_policies: [{ cluster: 'mRoute' }] }),
      ]),
      clusterExtra: { primary: hpo([{ cluster: 'mCluster' }]) },
    }), async (p, up) => {
      expect((await fetchText(`${p.url}/c`)).body).toBe('primary');
      await up.mCluster!.waitForRequests(1);
      // A cluster without its own policies keeps the route's.
      expect((await fetchText(`${p.url}/o`)).body).toBe('other');
      await up.mRoute!.waitForRequests(1);
      await sleep(150);
      expect(up.mCluster!.requests.map((r) => r.url)).toEqual(['/c']);
      expect(up.mRoute!.requests.map((r) => r.url)).toEqual(['/o']);
    });
  });

  test('two policies on one route mirror independently', async () => {
    await withProxy(['primary', 'mA', 'mB'], simple([{ cluster: 'mA' }, { cluster: 'mB' }]), async (p, up) => {
      expect((await fetchText(`${p.url}/two`)).status).toBe(200);
      const [[a], [b]] = await Promise.all([up.mA!.waitForRequests(1), up.mB!.waitForRequests(1)]);
      expect(a!.url).toBe('/two');
      expect(b!.url).toBe('/two');
      expect(a!.headers.host).toBe(b!.headers.host);
    });
  });
});

describe('runtime_fraction sampling', () => {
  const fraction = (numerator: number, runtime_key?: string): Json[] => [
    { cluster: 'mirror', runtime_fraction: { default_value: { numerator, denominator: 'HUNDRED' }, ...(runtime_key ? { runtime_key } : {}) } },
  ];
  const ok = (p: TestProxy) => async (): Promise<void> => {
    expect((await fetchText(`${p.url}/s`)).status).toBe(200);
  };

  test('0 %: no shadows over 200 requests, all counted as skipped.sampling', async () => {
    await withProxy(['primary', 'mirror'], simple(fraction(0)), async (p, up) => {
      await sendMany(200, 20, ok(p));
      expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.skipped.sampling')).toBe(200);
      await expectNoShadow(p, up.mirror!, 'mirror');
      expect(up.primary!.requests).toHaveLength(200);
    });
  });

  test('100 %: every one of 200 requests is mirrored', async () => {
    await withProxy(['primary', 'mirror'], simple(fraction(100)), async (p, up) => {
      await sendMany(200, 20, ok(p));
      await up.mirror!.waitForRequests(200);
      expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')).toBe(200);
      expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.skipped.sampling')).toBe(0);
    });
  });

  test('50 %: about half of 1,000; then a runtime override to 0 stops shadows', async () => {
    await withProxy(['primary', 'mirror'], simple(fraction(50, 'mirror.svc')), async (p, up) => {
      await sendMany(1000, 20, ok(p));
      const sent = await statValue(p.adminUrl, 'cluster.mirror.shadow.sent');
      expect(sent).toBeGreaterThanOrEqual(400);
      expect(sent).toBeLessThanOrEqual(600);
      expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.skipped.sampling')).toBe(1000 - sent);
      await up.mirror!.waitForRequests(sent);

      const modify = await fetchText(`${p.adminUrl}/runtime_modify?mirror.svc=0`, { method: 'POST' });
      expect(modify.status).toBe(200);
      await sendMany(100, 20, ok(p));
      expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.skipped.sampling')).toBe(1100 - sent);
      await expectNoShadow(p, up.mirror!, 'mirror', sent);

      const runtime = JSON.parse((await fetchText(`${p.adminUrl}/runtime`)).body) as { entries: Record<string, { final_value: string }> };
      expect(runtime.entries['mirror.svc']?.final_value).toBe('0');
      // A GET must not modify runtime: Envoy answers 405 "Method GET not allowed, POST required.";
      // a POST without any key=value is a 400 with the usage line.
      expect((await fetchText(`${p.adminUrl}/runtime_modify?mirror.svc=100`)).status).toBe(405);
      expect((await fetchText(`${p.adminUrl}/runtime_modify`)).status).toBe(405);
      expect((await fetchText(`${p.adminUrl}/runtime_modify`, { method: 'POST' })).status).toBe(400);
      const after = JSON.parse((await fetchText(`${p.adminUrl}/runtime`)).body) as { entries: Record<string, { final_value: string }> };
      expect(after.entries['mirror.svc']?.final_value).toBe('0');
    });
  });
});

describe('cluster_header policies', () => {
  const byHeader = simple([{ cluster_header: 'x-mirror-cluster' }]);
  const STATS = 'cluster.header:x-mirror-cluster.shadow.skipped';

  test('only the first value of the header is used', async () => {
    await withProxy(['primary', 'm1', 'm2'], byHeader, async (p, up) => {
      expect((await fetchText(`${p.url}/h`, { headers: { 'x-mirror-cluster': 'm1, m2' } })).status).toBe(200);
      await up.m1!.waitForRequests(1);
      await expectNoShadow(p, up.m2!, 'm2');
    });
  });

  test('a missing header means no shadow, counted as missing_header', async () => {
    await withProxy(['primary', 'm1'], byHeader, async (p, up) => {
      expect((await fetchText(`${p.url}/h`)).status).toBe(200);
      expect(await statValue(p.adminUrl, `${STATS}.missing_header`)).toBe(1);
      await expectNoShadow(p, up.m1!, 'm1');
    });
  });

  test('an unknown cluster in the header means no shadow, primary 200, counted as unknown_cluster', async () => {
    await withProxy(['primary', 'm1'], byHeader, async (p, up) => {
      const res = await fetchText(`${p.url}/h`, { headers: { 'x-mirror-cluster': 'no-such-cluster' } });
      expect(res.status).toBe(200);
      expect(res.body).toBe('primary');
      expect(await statValue(p.adminUrl, `${STATS}.unknown_cluster`)).toBe(1);
      await expectNoShadow(p, up.m1!, 'm1');
    });
  });
});

describe('requests that are never mirrored', () => {
  test('unknown primary cluster: client 503, no shadow', async () => {
    await withProxy(['primary', 'mirror'], () => ({
      rc: routeConfig([{ match: { prefix: '/' }, route: { cluster_header: 'x-target', request_mirror_policies: [{ cluster: 'mirror' }] } }]),
    }), async (p, up) => {
      // Control: a known primary is mirrored.
      expect((await fetchText(`${p.url}/k`, { headers: { 'x-target': 'primary' } })).status).toBe(200);
      await up.mirror!.waitForRequests(1);
      expect((await fetchText(`${p.url}/u`, { headers: { 'x-target': 'nope' } })).status).toBe(503);
      await expectNoShadow(p, up.mirror!, 'mirror', 1);
      expect(up.primary!.requests).toHaveLength(1);
    });
  });

  test('WebSocket upgrade: 403, no shadow', async () => {
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror' }]), async (p, up) => {
      const reply = await rawExchange(p.port, 'GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n'
        + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      expect(reply).toMatch(/^HTTP\/1\.1 403 /);
      await expectNoShadow(p, up.mirror!, 'mirror');
      expect(up.primary!.requests).toHaveLength(0);
    });
  });

  test('CONNECT: 404, no shadow', async () => {
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror' }]), async (p, up) => {
      const reply = await rawExchange(p.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
      expect(reply).toMatch(/^HTTP\/1\.1 404 /);
      await expectNoShadow(p, up.mirror!, 'mirror');
      expect(up.primary!.requests).toHaveLength(0);
    });
  });
});

describe('what the shadow copies', () => {
  test("the route's prefix_rewrite and host_rewrite_literal apply to the primary and the shadow", async () => {
    await withProxy(['primary', 'mirror'], () => ({
      rc: routeConfig([route('/api/', 'primary', {
        prefix_rewrite: '/v2/', host_rewrite_literal: 'backend.internal', request_mirror_policies: [{ cluster: 'mirror' }],
      })]),
    }), async (p, up) => {
      expect((await fetchText(`${p.url}/api/items?q=1`, { headers: { host: 'public.example' } })).status).toBe(200);
      const [shadow] = await up.mirror!.waitForRequests(1);
      const primary = up.primary!.requests[0]!;
      expect(primary.url).toBe('/v2/items?q=1');
      expect(primary.headers.host).toBe('backend.internal');
      expect(shadow!.url).toBe('/v2/items?q=1');
      expect(shadow!.headers.host).toBe('backend.internal-shadow');
    });
  });

  test('a POST with a JSON body: method, path and query, body and content-type are mirrored', async () => {
    await withProxy(['primary', 'mirror'], simple([{ cluster: 'mirror' }]), async (p, up) => {
      const json = JSON.stringify({ order: 42, items: ['a', 'b'] });
      const res = await request(`${p.url}/submit?id=7&x=y`, { method: 'POST', body: json, headers: { 'content-type': 'application/json' } });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      const [shadow] = await up.mirror!.waitForRequests(1);
      const primary = up.primary!.requests[0]!;
      for (const r of [primary, shadow!]) {
        expect(r.method).toBe('POST');
        expect(r.url).toBe('/submit?id=7&x=y');
        expect(r.body.toString('utf8')).toBe(json);
        expect(r.headers['content-type']).toBe('application/json');
      }
    });
  });
});
