// Regressions found in review, each shown with real sockets on 127.0.0.1: counters that must come
// back to zero, a slow shadow that must not change the primary's answer, bounds that must hold,
// Envoy's timeout semantics, and a cluster update that must not fail requests while it warms.
import { HookDirs } from '../../src/shadow/hook-dirs';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { loadBootstrapText } from '../../src/config/load';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { extBootstrap, extRoute, stat, until } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, type UpstreamOptions, sleep, startUpstream } from '../harness/upstream';

// Everything a test starts is stopped here by its handle, newest first (proxy before upstreams).
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

async function upstream(o: UpstreamOptions): Promise<Upstream> {
  const u = await startUpstream(o);
  cleanups.push(() => u.close());
  return u;
}

async function proxy(text: string, options: Parameters<typeof startProxy>[1] = {}): Promise<TestProxy> {
  const p = await startProxy(text, options);
  cleanups.push(() => p.stop());
  return p;
}

/** A raw client connection (closed after the test). */
async function connect(port: number): Promise<net.Socket & { received: () => string }> {
  const s = net.connect(port, '127.0.0.1');
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString('latin1')));
  s.on('error', () => undefined);
  await new Promise((resolve) => s.once('connect', resolve));
  cleanups.push(() => void s.destroy());
  return Object.assign(s, { received: () => got });
}

/** Answers `ms` after the request ends; the timer is cleared after the test. */
function answersAfter(ms: number, body = 'late'): UpstreamOptions {
  return {
    respond: (_req, res) => {
      const t = setTimeout(() => !res.destroyed && res.end(body), ms);
      cleanups.push(() => clearTimeout(t));
    },
  };
}

test('a route timeout (504) and a client that leaves bring the cluster and host in-flight counts back to 0', async () => {
  const primary = await upstream(answersAfter(3000));
  const p = await proxy(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary', { timeout: '0.2s' })]))],
    clusters: [cluster('primary', [primary.port])],
  }));
  const c = p.proxy.clusters.get('primary')!;

  const res = await fetchText(`${p.url}/slow`);
  expect(res.status).toBe(504);
  expect(res.body).toBe('upstream request timeout');
  await until('counts settled', () => c.active === 0 && c.hosts[0]!.active === 0, 1000).catch(() => undefined);
  expect([c.active, c.hosts[0]!.active]).toEqual([0, 0]);

  // A client that goes away while the upstream is connected and still thinking.
  const s = await connect(p.port);
  s.write('GET /slow HTTP/1.1\r\nhost: x\r\n\r\n');
  await primary.waitForRequests(2, 2000, true);
  s.destroy();
  await sleep(200);
  expect([c.active, c.hosts[0]!.active]).toEqual([0, 0]);
});

test('a sync shadow slower than the route timeout does not turn a fast primary answer into a 504', async () => {
  const primary = await upstream({ name: 'primary' });
  const slow = await upstream(answersAfter(3000));
  const p = await proxy(extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 's', cluster: 'slow', mode: 'SYNC', sync_timeout: '0.6s', timeouts: { read: '5s' } }], { timeout: '0.3s' })],
    clusters: [cluster('primary', [primary.port]), cluster('slow', [slow.port])],
  }));
  const res = await fetchText(`${p.url}/x`);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  expect(res.ms).toBeLessThan(1500);
  expect(await stat(p, 'mirror_policy.s.sync_timed_out')).toBe(1);
  expect(p.proxy.clusters.get('primary')!.active).toBe(0);
});

test('the route timeout still ends a primary that stays silent after its held headers are released', async () => {
  const primary = await upstream({
    respond: (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
    },
  });
  const mirror = await upstream({ name: 'mirror' });
  const p = await proxy(extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 's', cluster: 'mirror', mode: 'SYNC', sync_timeout: '1s' }], { timeout: '0.4s' })],
    clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
  }));
  const started = Date.now();
  const res = await request(`${p.url}/x`);
  expect(res.statusCode).toBe(200);
  await expect(res.body.text()).rejects.toThrow();
  expect(Date.now() - started).toBeLessThan(2000);
  await until('primary done', () => p.proxy.clusters.get('primary')!.active === 0, 1000);
});

test('a retry copy of the body is bounded by the shadow buffer cap, even under a larger max_bytes', async () => {
  const primary = await upstream({ name: 'primary' });
  const mirror = await upstream({ name: 'mirror', status: 503 });
  const p = await proxy(extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 'r', cluster: 'mirror', body: { max_bytes: 1048576 }, retry: { count: 1, on_5xx: true } }])],
    clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
  }), { shadowLimits: { maxBufferedBodyBytes: 64 * 1024 } });
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 20; i++) {
      yield Buffer.alloc(10_000, 98);
      await sleep(10);
    }
  }
  const res = await request(`${p.url}/up`, { method: 'POST', body: Readable.from(body()) });
  expect(res.statusCode).toBe(200);
  await res.body.text();
  await until('shadow answered', async () => (await stat(p, 'mirror_policy.r.succeeded.5xx')) === 1, 3000);
  await sleep(200);
  expect(await stat(p, 'mirror_policy.r.retried')).toBe(0);
  expect(mirror.requests).toHaveLength(1);
  expect(mirror.requests[0]!.body.length).toBe(200_000);
});

test("a shadow's inherited route timeout counts from the end of the request, as the primary's", async () => {
  const primary = await upstream({ name: 'primary' });
  const mirror = await upstream({ name: 'mirror' });
  const p = await proxy(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary', { timeout: '0.4s', request_mirror_policies: [{ cluster: 'mirror' }] })]))],
    clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
  }));
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 4; i++) {
      yield Buffer.alloc(1000, 97);
      await sleep(200);
    }
  }
  const res = await request(`${p.url}/up`, { method: 'POST', body: Readable.from(body()) });
  expect(res.statusCode).toBe(200);
  await res.body.text();
  await until('shadow ended', async () => (await stat(p, 'cluster.mirror.shadow.succeeded.2xx')) + (await stat(p, 'cluster.mirror.shadow.timed_out')) === 1, 3000);
  expect(await stat(p, 'cluster.mirror.shadow.succeeded.2xx')).toBe(1);
  await mirror.waitForRequests(1, 2000);
  expect(mirror.requests[0]!.body.length).toBe(4000);
});

test('a client that leaves after Node parsed its whole body, but before the proxy read it, aborts its shadow', async () => {
  // One primary connection, held by a first request: the second waits in the pool unread.
  const primary = await upstream({ respond: (req, res) => (req.url === '/hold' ? void setTimeout(() => res.end('held'), 1000) : res.end('ok')) });
  const mirror = await upstream({ name: 'mirror' });
  const p = await proxy(bootstrap({
    listeners: [listener(routeConfig([
      route('/hold', 'primary', { timeout: '0s' }),
      route('/', 'primary', { timeout: '0s', request_mirror_policies: [{ cluster: 'mirror' }] }),
    ]))],
    clusters: [cluster('primary', [primary.port], { circuit_breakers: { thresholds: [{ max_connections: 1 }] } }), cluster('mirror', [mirror.port])],
  }));
  const held = request(`${p.url}/hold`).then((r) => r.body.text());
  await primary.waitForRequests(1, 2000, true);
  const s = await connect(p.port);
  s.write(`POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n${'z'.repeat(100_000)}`);
  await until('shadow started', () => p.proxy.shadowWriter.inFlight('mirror') === 1, 2000);
  await sleep(100);
  s.destroy();
  await held;
  await until('shadow released', () => p.proxy.shadowWriter.inFlight('mirror') === 0, 2000);
  expect(await stat(p, 'cluster.mirror.shadow.failed.client_aborted')).toBe(1);
});

test('request_timeout under 60 s: the listener starts, and a stalled upload gets a 408 in time', async () => {
  const primary = await upstream({ name: 'primary' });
  const p = await proxy(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary')]), { hcm: { request_timeout: '0.5s' } })],
    clusters: [cluster('primary', [primary.port])],
  }));
  const s = await connect(p.port);
  s.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\nabc');
  await until('a reply', () => s.received() !== '', 3000);
  expect(s.received()).toMatch(/^HTTP\/1\.1 408 /);
  expect(await stat(p, 'http.ingress_http.downstream_rq_timeout')).toBe(1);
  expect(await stat(p, 'http.ingress_http.downstream_cx_protocol_error')).toBe(0);
});

test('changing a health-checked cluster keeps the old one serving until the new one is warm', async () => {
  const primary = await upstream({ respond: (req, res) => (req.url === '/healthz' ? void setTimeout(() => res.end('ok'), 300) : res.end('ok')) });
  const text = (connectTimeout: string): string => bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary')]))],
    clusters: [cluster('primary', [primary.port], {
      connect_timeout: connectTimeout,
      health_checks: [{ timeout: '1s', interval: '5s', no_traffic_interval: '5s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: '/healthz' } }],
    })],
  });
  const p = await proxy(text('1s'));
  expect((await fetchText(`${p.url}/a`)).status).toBe(200);
  const reloading = p.proxy.reload(loadBootstrapText(text('2s')));
  await sleep(20);
  expect((await fetchText(`${p.url}/a`)).status).toBe(200);
  await reloading;
  expect(p.proxy.clusters.get('primary')!.config.connectTimeoutMs).toBe(2000);
  expect((await fetchText(`${p.url}/a`)).status).toBe(200);
});

test('a primary that answers before reading the upload: the response arrives, then the connection is closed', async () => {
  // 1. The upstream answers as soon as it has the headers and never reads the body.
  const http = await import('node:http');
  const early = http.createServer((_req, res) => res.end('early'));
  await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => { early.closeAllConnections(); early.close(() => resolve()); }));
  const port = (early.address() as net.AddressInfo).port;
  const p = await proxy(bootstrap({ listeners: [listener(routeConfig([route('/', 'primary')]))], clusters: [cluster('primary', [port])] }));
  // 2. The client declares 10 MB and sends 64 KiB.
  const s = await connect(p.port);
  s.write(`POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: ${10 * 1024 * 1024}\r\n\r\n`);
  s.write(Buffer.alloc(64 * 1024, 1));
  // 3. It gets the primary's answer, and then the proxy closes the connection (bounded wait).
  const closed = new Promise<void>((resolve) => s.once('end', () => resolve()));
  await until('the early answer', async () => s.received().includes('early'), 3000);
  await Promise.race([closed, sleep(3000).then(() => { throw new Error('connection still open 3 s after the response'); })]);
  expect(s.received()).toMatch(/^HTTP\/1\.1 200/);
});

test('shadows waiting on a hook count against the in-flight cap', async () => {
  // 1. A beforeMirror hook that takes 400 ms to decide; the filter allows 2 shadows in flight.
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-hook-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const hook = path.join(dir, 'slow.js');
  fs.writeFileSync(hook, 'exports.beforeMirror = () => new Promise((r) => setTimeout(() => r(true), 400));\n');
  const primary = await upstream({ name: 'primary' });
  const mirror = await upstream({ name: 'mirror' });
  const p = await proxy(extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 'slowhook', cluster: 'mirror', hooks: { module: hook, timeout: '2s' } }])],
    clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
    filter: { max_inflight_per_cluster: 2 },
  }), { hookDirs: new HookDirs([dir]) });
  // 2. Five requests at once: all primaries answer; two shadows are admitted, three dropped.
  const answers = await Promise.all([1, 2, 3, 4, 5].map(() => fetchText(`${p.url}/x`)));
  expect(answers.map((a) => a.body)).toEqual(['primary', 'primary', 'primary', 'primary', 'primary']);
  await mirror.waitForRequests(2);
  expect(await stat(p, 'mirror_policy.slowhook.dropped.inflight_cap')).toBe(3);
});
