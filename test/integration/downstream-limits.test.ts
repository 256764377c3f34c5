// Envoy's downstream timeouts and limits on real sockets: stream_idle_timeout against slow
// partial bodies (slowloris), the route's idle_timeout, the connection idle timeout,
// max_connection_duration, max_requests_per_connection, header count and size (431), the
// request header timeout, and the global and per-listener connection limits.
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { stat, until } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, type UpstreamOptions, sleep, startUpstream } from '../harness/upstream';

jest.setTimeout(90_000);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

async function upstream(o: UpstreamOptions = {}): Promise<Upstream> {
  const u = await startUpstream(o);
  cleanups.push(() => u.close());
  return u;
}

async function proxy(text: string): Promise<TestProxy> {
  const p = await startProxy(text);
  cleanups.push(() => p.stop());
  return p;
}

type RawClient = net.Socket & { received: () => string; isClosed: () => boolean };

/** A raw client connection, destroyed after the test. */
async function connect(port: number): Promise<RawClient> {
  const s = net.connect(port, '127.0.0.1');
  let got = '';
  let closed = false;
  s.on('data', (d: Buffer) => (got += d.toString('latin1')));
  s.on('error', () => undefined);
  s.on('close', () => (closed = true));
  await new Promise((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  cleanups.push(() => void s.destroy());
  return Object.assign(s, { received: () => got, isClosed: () => closed });
}

const GET = 'GET / HTTP/1.1\r\nhost: x\r\n\r\n';

/** A loopback port nothing listens on right now (two listeners may not both ask for port 0). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function oneListener(primaryPort: number, hcm: Record<string, unknown> = {}, action: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): string {
  return bootstrap({ listeners: [listener(routeConfig([route('/', 'primary', action)]), { hcm })], clusters: [cluster('primary', [primaryPort])], extra });
}

/** The soft limit on open files of this process (the shell's `ulimit -n` is inherited). */
function fdLimit(): number {
  const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
}

describe('stream_idle_timeout', () => {
  test('1,000 connections that send headers and one body byte are closed with a 408, and a normal client is served meanwhile', async () => {
    const N = 1000;
    // Each slow connection holds four descriptors in this one process: client, proxy downstream,
    // proxy upstream, upstream server. Say so plainly rather than quietly testing fewer.
    expect(fdLimit()).toBeGreaterThanOrEqual(4 * (N + 100) + 500);
    const primary = await upstream({ name: 'primary' });
    // Short, yet long enough that all 1,000 are open at once: on a loaded two-core box, opening
    // them through the proxy to the upstream (all in this one process) takes several seconds.
    const p = await proxy(oneListener(primary.port, { stream_idle_timeout: '15s' }));
    const opened = Date.now();
    const c = p.proxy.clusters.get('primary')!;

    // 1. Open the slow connections in batches: headers, one byte of a 100-byte body, then silence.
    const slow: RawClient[] = [];
    for (let i = 0; i < N; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => connect(p.port)));
      for (const s of batch) s.write('POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\na');
      slow.push(...batch);
      // Let the proxy accept each batch: past the listen backlog the kernel would delay the rest by
      // SYN retries, which is not what this test measures.
      await until('batch accepted', () => c.active >= slow.length, 10_000);
    }
    await until('the slow requests reached the upstream', () => c.active === N, 15_000);

    // 2. While they are open (each holds the cluster's max_requests budget), a normal client is served.
    const open = slow.filter((s) => !s.isClosed()).length;
    const ok = await fetchText(`${p.url}/normal`);
    expect(ok.status).toBe(200);
    expect(open).toBe(N);

    // 3. Each is answered 408 "stream timeout" and closed; the cluster's in-flight count drains.
    await until('every slow connection closed', () => slow.every((s) => s.isClosed()), 30_000);
    // Closed by the idle timer, not sooner.
    expect(Date.now() - opened).toBeGreaterThanOrEqual(15_000 - 500);
    for (const s of slow) expect(s.received()).toMatch(/^HTTP\/1\.1 408 [^]*\r\n\r\nstream timeout$/);
    await until('cluster drained', () => c.active === 0, 5000);
    expect(await stat(p, 'http.ingress_http.downstream_rq_idle_timeout')).toBe(N);

    // 4. A second wave: without the reaping, 1,000 + 100 open requests would pass max_requests (1,024).
    const more = await Promise.all(Array.from({ length: 100 }, () => connect(p.port)));
    for (const s of more) s.write('POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\na');
    await until('second wave upstream', () => c.active >= 90, 10_000);
    expect((await fetchText(`${p.url}/normal`)).status).toBe(200);
    expect(await stat(p, 'cluster.primary.upstream_rq_pending_overflow')).toBe(0);
  });

  test('a response already started is reset, not answered twice', async () => {
    const primary = await upstream({ respond: (_req, res) => { res.writeHead(200, { 'content-length': '10' }); res.write('abc'); } });
    const p = await proxy(oneListener(primary.port, { stream_idle_timeout: '0.3s' }));
    const s = await connect(p.port);
    s.write(GET);
    await until('closed', () => s.isClosed(), 5000);
    expect(s.received()).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\nabc$/);
    expect(await stat(p, 'http.ingress_http.downstream_rq_idle_timeout')).toBe(1);
  });

  test("the route's idle_timeout overrides it: a slow upstream gets a 408 at the route's bound", async () => {
    const primary = await upstream({ delayMs: 3000 });
    const p = await proxy(oneListener(primary.port, { stream_idle_timeout: '30s' }, { idle_timeout: '0.3s' }));
    const res = await fetchText(`${p.url}/x`);
    expect(res.status).toBe(408);
    expect(res.body).toBe('stream timeout');
    expect(res.ms).toBeLessThan(2500);
    await until('cluster drained', () => p.proxy.clusters.get('primary')!.active === 0, 3000);
  });

  test('stream_idle_timeout 0 disables it (the route timeout still answers)', async () => {
    const primary = await upstream({ delayMs: 1500 });
    const p = await proxy(oneListener(primary.port, { stream_idle_timeout: '0s' }, { timeout: '0.5s' }));
    const res = await fetchText(`${p.url}/x`);
    expect(res.status).toBe(504);
    expect(await stat(p, 'http.ingress_http.downstream_rq_idle_timeout')).toBe(0);
  });
});

describe('request headers timeout', () => {
  test('headers that never finish get 408 "request header timeout" and are counted', async () => {
    const primary = await upstream();
    const p = await proxy(oneListener(primary.port, { request_headers_timeout: '0.3s' }));
    const s = await connect(p.port);
    s.write('GET / HTTP/1.1\r\nhost: x\r\nx-slow: ');
    await until('closed', () => s.isClosed(), 5000);
    expect(s.received()).toMatch(/^HTTP\/1\.1 408 [^]*request header timeout$/);
    expect(await stat(p, 'http.ingress_http.downstream_rq_header_timeout')).toBe(1);
    expect(await stat(p, 'http.ingress_http.downstream_rq_timeout')).toBe(0);
    expect(primary.requests).toHaveLength(0);
  });
});

describe('headers that never finish, without request_headers_timeout', () => {
  test.each([
    [{ stream_idle_timeout: '0.3s' }, 'stream timeout', 'downstream_rq_idle_timeout'],
    [{ request_timeout: '0.3s' }, 'request timeout', 'downstream_rq_timeout'],
  ])('%j: 408 "%s", counted as %s', async (hcm, body, counter) => {
    const primary = await upstream();
    const p = await proxy(oneListener(primary.port, hcm));
    const s = await connect(p.port);
    s.write('GET / HTTP/1.1\r\nhost: x\r\nx-slow: ');
    await until('closed', () => s.isClosed(), 5000);
    expect(s.received()).toMatch(new RegExp(`^HTTP/1\\.1 408 [^]*\\r\\n\\r\\n${body}$`));
    expect(await stat(p, `http.ingress_http.${counter}`)).toBe(1);
    expect(await stat(p, 'http.ingress_http.downstream_rq_header_timeout')).toBe(0);
  });
});

describe('common_http_protocol_options', () => {
  test('idle_timeout closes a keep-alive connection with no request in flight', async () => {
    const primary = await upstream({ name: 'primary' });
    const p = await proxy(oneListener(primary.port, { common_http_protocol_options: { idle_timeout: '0.4s' } }));
    const s = await connect(p.port);
    s.write(GET);
    await until('response', () => s.received().endsWith('primary'), 3000);
    const answered = Date.now();
    await until('closed', () => s.isClosed(), 3000);
    expect(Date.now() - answered).toBeGreaterThanOrEqual(300);
    // A connection that never sends a request is closed the same way.
    const quiet = await connect(p.port);
    await until('quiet closed', () => quiet.isClosed(), 3000);
    expect(quiet.received()).toBe('');
    expect(await stat(p, 'http.ingress_http.downstream_cx_idle_timeout')).toBe(2);
  });

  test('a request in flight is not cut by the connection idle_timeout', async () => {
    const primary = await upstream({ name: 'slow', delayMs: 800 });
    const p = await proxy(oneListener(primary.port, { common_http_protocol_options: { idle_timeout: '0.3s' } }));
    const res = await fetchText(`${p.url}/x`);
    expect([res.status, res.body]).toEqual([200, 'slow']);
  });

  test('max_requests_per_connection: the last response says connection: close and the connection closes', async () => {
    const primary = await upstream({ name: 'primary' });
    const p = await proxy(oneListener(primary.port, { common_http_protocol_options: { max_requests_per_connection: 2 } }));
    const s = await connect(p.port);
    s.write(GET);
    await until('first', () => s.received().endsWith('primary'), 3000);
    expect(s.received()).not.toMatch(/connection: close/i);
    s.write(GET);
    await until('closed', () => s.isClosed(), 3000);
    const second = s.received().slice(s.received().indexOf('HTTP/1.1', 5));
    expect(second).toMatch(/^HTTP\/1\.1 200 [^]*connection: close/i);
    expect(await stat(p, 'http.ingress_http.downstream_cx_max_requests_reached')).toBe(1);
  });

  test('max_connection_duration closes an idle connection, and a busy one after its response', async () => {
    const primary = await upstream({ name: 'primary', respond: (req, res) => void setTimeout(() => res.end('done'), req.url === '/slow' ? 1000 : 0) });
    const p = await proxy(oneListener(primary.port, { common_http_protocol_options: { max_connection_duration: '0.5s' } }));
    // 1. Idle when the duration passes: closed at once.
    const idle = await connect(p.port);
    idle.write(GET);
    await until('idle answered', () => idle.received().endsWith('done'), 3000);
    await until('idle closed', () => idle.isClosed(), 3000);
    // 2. Busy when it passes: the response still arrives, with connection: close, then the close.
    const busy = await connect(p.port);
    busy.write('GET /slow HTTP/1.1\r\nhost: x\r\n\r\n');
    await until('busy closed', () => busy.isClosed(), 5000);
    expect(busy.received()).toMatch(/^HTTP\/1\.1 200 [^]*connection: close[^]*done$/i);
    expect(await stat(p, 'http.ingress_http.downstream_cx_max_duration_reached')).toBe(2);
  });

  test('more request headers than max_headers_count get a 431', async () => {
    const primary = await upstream({ name: 'primary' });
    const p = await proxy(oneListener(primary.port, { common_http_protocol_options: { max_headers_count: 10 } }));
    const headers = (n: number): string => Array.from({ length: n - 1 }, (_, i) => `x-h${i}: v\r\n`).join('');
    const fits = await connect(p.port);
    fits.write(`GET / HTTP/1.1\r\nhost: x\r\n${headers(10)}\r\n`);
    await until('fits answered', () => fits.received().endsWith('primary'), 3000);
    const over = await connect(p.port);
    over.write(`GET / HTTP/1.1\r\nhost: x\r\n${headers(11)}\r\n`);
    await until('over closed', () => over.isClosed(), 3000);
    expect(over.received()).toMatch(/^HTTP\/1\.1 431 /);
    expect(primary.requests).toHaveLength(1);
    expect(await stat(p, 'http.ingress_http.downstream_cx_protocol_error')).toBe(1);
  });

  test('Envoy\'s default of 100 headers applies unconfigured', async () => {
    const primary = await upstream({ name: 'primary' });
    const p = await proxy(oneListener(primary.port));
    const over = await connect(p.port);
    over.write(`GET / HTTP/1.1\r\nhost: x\r\n${Array.from({ length: 100 }, (_, i) => `x-h${i}: v\r\n`).join('')}\r\n`);
    await until('over closed', () => over.isClosed(), 3000);
    expect(over.received()).toMatch(/^HTTP\/1\.1 431 /);
  });
});

describe('max_request_headers_kb', () => {
  test('60 KiB by default: 30 KiB of headers pass; over the configured size a 431', async () => {
    const primary = await upstream({ name: 'primary' });
    // A direct response: the test upstream (Node's 16 KiB default) is not what is measured.
    const direct = { match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'ok' } } };
    const p = await proxy(bootstrap({ listeners: [listener(routeConfig([direct]))], clusters: [] }));
    const big = await fetchText(`${p.url}/`, { headers: { 'x-big': 'a'.repeat(30 * 1024) } });
    expect([big.status, big.body]).toEqual([200, 'ok']);

    const small = await proxy(oneListener(primary.port, { max_request_headers_kb: 1 }));
    const s = await connect(small.port);
    s.write(`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(2000)}\r\n\r\n`);
    await until('closed', () => s.isClosed(), 3000);
    expect(s.received()).toMatch(/^HTTP\/1\.1 431 /);
    expect(await stat(small, 'http.ingress_http.downstream_cx_protocol_error')).toBe(1);
  });
});

describe('connection limits', () => {
  const overload = (max: number): Record<string, unknown> => ({
    overload_manager: {
      resource_monitors: [{
        name: 'envoy.resource_monitors.global_downstream_max_connections',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
          max_active_downstream_connections: max,
        },
      }],
    },
  });

  test('the global downstream limit closes connections over it at once and counts them', async () => {
    const primary = await upstream({ name: 'primary' });
    const p = await proxy(oneListener(primary.port, {}, {}, overload(3)));
    const held = await Promise.all([0, 1, 2].map(() => connect(p.port)));
    for (const s of held) s.write(GET);
    await until('held answered', () => held.every((s) => s.received().endsWith('primary')), 3000);
    const refused = await connect(p.port);
    refused.write(GET);
    await until('refused closed', () => refused.isClosed(), 3000);
    expect(refused.received()).toBe('');
    expect(await stat(p, 'listener.127.0.0.1_0.downstream_global_cx_overflow')).toBe(1);
    // A place freed is a place again.
    held[0]!.destroy();
    await until('freed', () => p.proxy.listeners.globalConnections.active === 2, 3000);
    const next = await connect(p.port);
    next.write(GET);
    await until('next answered', () => next.received().endsWith('primary'), 3000);
  });

  test('a listener with ignore_global_conn_limit still accepts, and its connections take no place', async () => {
    const primary = await upstream({ name: 'primary' });
    const rc = routeConfig([route('/', 'primary')]);
    const free = { ...listener(rc, { name: 'free', port: await freePort() }), ignore_global_conn_limit: true, stat_prefix: 'free' };
    const p = await proxy(bootstrap({ listeners: [listener(rc), free], clusters: [cluster('primary', [primary.port])], extra: overload(1) }));
    const onFree = await Promise.all([0, 1, 2].map(() => connect(p.proxy.listenerPort('free'))));
    for (const s of onFree) s.write(GET);
    await until('free answered', () => onFree.every((s) => s.received().endsWith('primary')), 3000);
    expect(p.proxy.listeners.globalConnections.active).toBe(0);
    const counted = await connect(p.port);
    counted.write(GET);
    await until('counted answered', () => counted.received().endsWith('primary'), 3000);
    const refused = await connect(p.port);
    await until('refused closed', () => refused.isClosed(), 3000);
    expect(await stat(p, 'listener.127.0.0.1_0.downstream_global_cx_overflow')).toBe(1);
    expect(await stat(p, 'listener.free.downstream_global_cx_overflow')).toBe(0);
  });

  test("a listener's runtime connection_limit refuses and counts as downstream_cx_overflow", async () => {
    const primary = await upstream({ name: 'primary' });
    const p = await proxy(oneListener(primary.port, {}, {}, {
      layered_runtime: { layers: [{ name: 'static', static_layer: { 'envoy.resource_limits.listener.ingress.connection_limit': 2 } }] },
    }));
    const held = await Promise.all([0, 1].map(() => connect(p.port)));
    for (const s of held) s.write(GET);
    await until('held answered', () => held.every((s) => s.received().endsWith('primary')), 3000);
    const refused = await connect(p.port);
    await until('refused closed', () => refused.isClosed(), 3000);
    expect(await stat(p, 'listener.127.0.0.1_0.downstream_cx_overflow')).toBe(1);
    expect(await stat(p, 'listener.127.0.0.1_0.downstream_global_cx_overflow')).toBe(0);
  });
});
