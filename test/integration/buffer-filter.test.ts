import * as http2 from 'node:http2';
import * as net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// envoy.filters.http.buffer with real sockets: the whole body is read before the request goes
// upstream, then sent with its content-length (to the shadows too); over the limit a 413.

type Json = Record<string, unknown>;
const BUFFER = 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer';
const BUFFER_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const buffer = (max: number): Json => ({ name: 'envoy.filters.http.buffer', typed_config: { '@type': BUFFER, max_request_bytes: max } });

let upstream: Upstream;
let mirror: Upstream;
const running: TestProxy[] = [];

beforeAll(async () => {
  upstream = await startUpstream({ name: 'upstream' });
  mirror = await startUpstream({ name: 'mirror' });
});
afterAll(async () => {
  await upstream.close();
  await mirror.close();
});
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});

async function proxyWith(filters: Json[], routes: Json[] = [route('/', 'backend')]): Promise<TestProxy> {
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig(routes), { hcm: { http_filters: [...filters, ROUTER] } })],
    clusters: [cluster('backend', [upstream.port]), cluster('mirror', [mirror.port])],
  }));
  running.push(p);
  return p;
}

/**
 * A chunked upload (no content-length) of `parts`, each written after `gapMs` (undici sends a
 * stream that has ended by the time it reads it with a content-length).
 */
function chunked(parts: Buffer[], gapMs = 10): Readable {
  const out = new PassThrough();
  void (async () => {
    for (const part of parts) {
      if (gapMs) await sleep(gapMs);
      out.write(part);
    }
    out.end();
  })();
  return out;
}

const find = (u: Upstream, url: string) => u.requests.find((r) => r.url === url);

describe('buffer filter', () => {
  test('a chunked body under the limit goes upstream whole, with its content-length and no chunking', async () => {
    const p = await proxyWith([buffer(1_000_000)]);
    const parts = [Buffer.alloc(40_000, 1), Buffer.alloc(60_000, 2)];
    const r = await fetchText(`${p.url}/whole`, { method: 'POST', body: chunked(parts) });
    expect(r.status).toBe(200);
    expect(find(upstream, '/whole')).toBeDefined();
    const seen = find(upstream, '/whole')!;
    expect(seen.headers['content-length']).toBe('100000');
    expect(seen.headers['transfer-encoding']).toBeUndefined();
    expect(seen.body.equals(Buffer.concat(parts))).toBe(true);
  });

  test('nothing reaches the upstream before the last byte of the body has come', async () => {
    const p = await proxyWith([buffer(1_000_000)]);
    const upload = new PassThrough();
    const pending = fetchText(`${p.url}/held`, { method: 'POST', body: upload });
    upload.write(Buffer.alloc(10_000, 1));
    await sleep(400);
    // 1. half of the body is in, and the upstream has seen nothing of the request
    expect(find(upstream, '/held')).toBeUndefined();
    upload.end(Buffer.alloc(10_000, 2));
    // 2. the rest comes: the request goes, whole
    expect((await pending).status).toBe(200);
    expect(find(upstream, '/held')!.body.length).toBe(20_000);
  });

  test('a body over the limit gets 413 Payload Too Large and never goes upstream; counted', async () => {
    const p = await proxyWith([buffer(50_000)]);
    const before = upstream.requests.length;
    const r = await fetchText(`${p.url}/big`, { method: 'POST', body: chunked([Buffer.alloc(30_000), Buffer.alloc(30_000)], 50) });
    expect(r.status).toBe(413);
    expect(r.body).toBe('Payload Too Large');
    // A declared content-length over the limit is refused too.
    const declared = await fetchText(`${p.url}/big2`, { method: 'POST', body: Buffer.alloc(50_001) });
    expect(declared.status).toBe(413);
    // Exactly the limit fits.
    expect((await fetchText(`${p.url}/fits`, { method: 'POST', body: Buffer.alloc(50_000) })).status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_rq_too_large')).toBe(2);
  });

  test('a 413 to a client still uploading closes the connection after the answer, which the client gets whole', async () => {
    const p = await proxyWith([buffer(10_000)]);
    const socket = net.connect(p.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.write('POST /stream HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n');
    // 1. more than the limit, and the body never ends
    for (let i = 0; i < 4; i++) socket.write(`1000\r\n${'a'.repeat(4096)}\r\n`);
    await closed;
    const text = Buffer.concat(received).toString();
    expect(text.startsWith('HTTP/1.1 413')).toBe(true);
    expect(text).toMatch(/connection: close/i);
    expect(text.endsWith('Payload Too Large')).toBe(true);
  }, 10_000);

  test('shadows get the buffered body with its content-length', async () => {
    const p = await proxyWith([buffer(1_000_000)], [route('/', 'backend', { request_mirror_policies: [{ cluster: 'mirror' }] })]);
    const parts = [Buffer.alloc(20_000, 3), Buffer.alloc(5_000, 4)];
    expect((await fetchText(`${p.url}/mirrored`, { method: 'POST', body: chunked(parts, 20) })).status).toBe(200);
    await mirror.waitForRequests(1);
    const shadow = find(mirror, '/mirrored')!;
    expect(shadow.headers['content-length']).toBe('25000');
    expect(shadow.body.equals(Buffer.concat(parts))).toBe(true);
    expect(find(upstream, '/mirrored')!.body.equals(Buffer.concat(parts))).toBe(true);
  });

  test('a buffered body over the shadow buffer cap (1 MiB) drops the shadow as body_cap; the primary gets it whole', async () => {
    const p = await proxyWith([buffer(4_000_000)], [route('/', 'backend', { request_mirror_policies: [{ cluster: 'mirror' }] })]);
    const body = Buffer.alloc(2_000_000, 8);
    expect((await fetchText(`${p.url}/over-cap`, { method: 'POST', body: chunked([body.subarray(0, 1_000_000), body.subarray(1_000_000)]) })).status).toBe(200);
    expect(find(upstream, '/over-cap')!.body.equals(body)).toBe(true);
    let dropped = 0;
    for (let i = 0; i < 100 && dropped === 0; i++) {
      dropped = await statValue(p.adminUrl, 'cluster.mirror.shadow.dropped.body_cap');
      if (dropped === 0) await sleep(50);
    }
    expect(dropped).toBe(1);
  });

  test('BufferPerRoute: disabled streams the body; buffer sets the route\'s own limit', async () => {
    const p = await proxyWith([buffer(1000)], [
      { ...route('/off', 'backend'), typed_per_filter_config: { 'envoy.filters.http.buffer': { '@type': BUFFER_PER_ROUTE, disabled: true } } },
      { ...route('/roomy', 'backend'), typed_per_filter_config: { 'envoy.filters.http.buffer': { '@type': BUFFER_PER_ROUTE, buffer: { max_request_bytes: 100_000 } } } },
      route('/', 'backend'),
    ]);
    const body = (): Readable => chunked([Buffer.alloc(3000, 5)]);
    expect((await fetchText(`${p.url}/tight`, { method: 'POST', body: body() })).status).toBe(413);
    expect((await fetchText(`${p.url}/roomy`, { method: 'POST', body: body() })).status).toBe(200);
    expect(find(upstream, '/roomy')!.headers['content-length']).toBe('3000');
    // Not buffered: the upstream has the request while the client is still uploading.
    const upload = new PassThrough();
    const before = upstream.requests.length;
    const pending = fetchText(`${p.url}/off`, { method: 'POST', body: upload });
    upload.write(Buffer.alloc(3000, 5));
    await upstream.waitForRequests(before + 1, 5000, true);
    expect(find(upstream, '/off')!.complete).toBe(false);
    upload.end();
    expect((await pending).status).toBe(200);
    expect(find(upstream, '/off')!.body.length).toBe(3000);
  });

  test('HTTP/2: a body without content-length goes upstream with one; requests without a body pass', async () => {
    const p = await proxyWith([buffer(1_000_000)]);
    expect((await fetchText(`${p.url}/get`)).status).toBe(200);
    const session = http2.connect(p.url);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/h2' });
      stream.write(Buffer.alloc(7000, 6));
      stream.end(Buffer.alloc(3000, 7));
      const status = await new Promise<number>((resolve, reject) => {
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', reject);
      });
      stream.resume();
      expect(status).toBe(200);
    } finally {
      session.close();
    }
    const seen = find(upstream, '/h2')!;
    expect(seen.headers['content-length']).toBe('10000');
    expect(seen.body.length).toBe(10_000);
  });

  test('config: max_request_bytes is required and positive; per-route needs one of its fields', () => {
    const errors = (filters: Json[], routes: Json[] = [route('/', 'backend')]): string[] => {
      try {
        loadBootstrapText(bootstrap({ listeners: [listener(routeConfig(routes), { hcm: { http_filters: [...filters, ROUTER] } })], clusters: [cluster('backend', [1])] }));
        return [];
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        return err.issues.map((i) => `${i.path}: ${i.message}`);
      }
    };
    expect(errors([{ name: 'envoy.filters.http.buffer', typed_config: { '@type': BUFFER } }]).join('\n')).toMatch(/http_filters\[0\]\.typed_config\.max_request_bytes: max_request_bytes is required/);
    expect(errors([buffer(0)]).join('\n')).toMatch(/max_request_bytes: must be greater than 0/);
    expect(errors([buffer(10)], [{ ...route('/', 'backend'), typed_per_filter_config: { 'envoy.filters.http.buffer': { '@type': BUFFER_PER_ROUTE } } }]).join('\n'))
      .toMatch(/typed_per_filter_config\["envoy.filters.http.buffer"\]: one of disabled or buffer is required/);
  });
});
