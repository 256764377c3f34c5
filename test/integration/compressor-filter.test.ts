import { createHash } from 'node:crypto';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as zlib from 'node:zlib';
import { request } from 'undici';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type CompressUpstream, brotliLib, compressor, gzipLib, noiseBody, startCompressUpstream, textBody } from '../harness/compress-upstream';
import { MIRROR_FILTER_NAME, MIRROR_TYPE, extRoute } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { sleep, startUpstream } from '../harness/upstream';

// envoy.filters.http.compressor with real sockets: gzip and brotli responses decode to the
// upstream's bytes (large, streamed, with back-pressure), HTTP/2 downstream, trailers kept,
// gRPC left alone, and what is not compressed (small, other types, no Accept-Encoding).

type Json = Record<string, unknown>;
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';


let upstream: CompressUpstream;
const running: TestProxy[] = [];

beforeAll(async () => {
  upstream = await startCompressUpstream();
});
afterAll(async () => {
  await upstream.close();
});
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});

async function proxyWith(filters: Json[], clusters: Json[] = [cluster('backend', [upstream.port])], action: Json = {}, routes?: Json[]): Promise<TestProxy> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(routes ?? [route('/', 'backend', action)]), { hcm: { http_filters: [...filters, ROUTER] } })], clusters }));
  running.push(p);
  return p;
}

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  raw: Buffer;
  trailers: Record<string, string | string[] | undefined>;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Got> {
  const res = await request(url, { headers });
  const raw = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, raw, trailers: res.trailers };
}

function decode(got: Got): Buffer {
  const enc = got.headers['content-encoding'];
  if (enc === 'gzip') return zlib.gunzipSync(got.raw);
  if (enc === 'br') return zlib.brotliDecompressSync(got.raw);
  return got.raw;
}

function h2get(url: string, headers: http2.OutgoingHttpHeaders): Promise<Got> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const stream = session.request({ ':method': 'GET', ...headers });
    stream.end();
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (head = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      session.close();
      resolve({ status: Number(head[':status']), headers: head, raw: Buffer.concat(chunks), trailers });
    });
    stream.on('error', reject);
  });
}

const stat = (p: TestProxy, name: string): Promise<number> => statValue(p.adminUrl, `http.ingress_http.compressor.text.${name}`);

describe('compressor filter: gzip and brotli', () => {
  test('gzip: a large response decodes to the upstream\'s bytes; headers and stats as Envoy\'s', async () => {
    const p = await proxyWith([compressor(gzipLib())]);
    const got = await get(`${p.url}/chunked?size=3000000`, { 'accept-encoding': 'gzip' });
    expect(got.status).toBe(200);
    expect(got.headers['content-encoding']).toBe('gzip');
    expect(got.headers.vary).toBe('Accept-Encoding');
    expect(got.headers['content-length']).toBeUndefined();
    expect(decode(got).equals(textBody(3_000_000))).toBe(true);
    expect(got.raw.length).toBeLessThan(3_000_000 / 3);
    expect(await stat(p, 'gzip.response.compressed')).toBe(1);
    expect(await stat(p, 'gzip.header_compressor_used')).toBe(1);
    expect(await stat(p, 'gzip.response.total_uncompressed_bytes')).toBe(3_000_000);
    expect(await stat(p, 'gzip.response.total_compressed_bytes')).toBe(got.raw.length);
    const prom = (await fetchText(`${p.adminUrl}/stats/prometheus`)).body;
    expect(prom).toContain('envoy_http_compressor_compressed{envoy_http_conn_manager_prefix="ingress_http",compressor_library="text",compressor="gzip",direction="response"} 1');
  });

  test('brotli with its settings: a large response decodes to the upstream\'s bytes', async () => {
    const p = await proxyWith([compressor(brotliLib({ quality: 5, window_bits: 16, input_block_bits: 18, encoder_mode: 'TEXT', chunk_size: 8192 }))]);
    const got = await get(`${p.url}/text?size=1000000&type=application/json`, { 'accept-encoding': 'br' });
    expect(got.headers['content-encoding']).toBe('br');
    expect(decode(got).equals(textBody(1_000_000))).toBe(true);
    expect(await stat(p, 'brotli.response.compressed')).toBe(1);
  });

  test('gzip with every setting (the gzip sandbox\'s memory_level and window_bits among them)', async () => {
    const p = await proxyWith([compressor(gzipLib({ memory_level: 3, window_bits: 10, compression_level: 'BEST_COMPRESSION', compression_strategy: 'FILTERED', chunk_size: 4096 }))]);
    const got = await get(`${p.url}/text?size=200000`, { 'accept-encoding': 'gzip' });
    expect(decode(got).equals(textBody(200_000))).toBe(true);
  });

  test('streamed: the first half arrives, decodable, while the upstream still holds the rest', async () => {
    const p = await proxyWith([compressor(gzipLib())]);
    const res = await request(`${p.url}/stream?size=100000`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers['content-encoding']).toBe('gzip');
    const gunzip = zlib.createGunzip();
    const plain: Buffer[] = [];
    let length = 0;
    gunzip.on('data', (c: Buffer) => {
      plain.push(c);
      length += c.length;
    });
    res.body.pipe(gunzip);
    // 1. the upstream's first half, flushed through the compressor without waiting for the end
    for (let i = 0; i < 100 && length < 50_000; i++) await sleep(50);
    expect(length).toBe(50_000);
    // 2. then the rest, and the end
    upstream.release();
    await new Promise((resolve) => gunzip.once('end', resolve));
    expect(Buffer.concat(plain).equals(textBody(100_000))).toBe(true);
  });

  test('back-pressure: a client that reads nothing stops the upstream; then it gets every byte', async () => {
    const size = 32 * 1024 * 1024;
    // Bytes that do not compress, so that what the buffers on the way hold is what the upstream wrote.
    const p = await proxyWith([compressor(gzipLib({ compression_level: 'BEST_SPEED' }))], undefined, { timeout: '0s' });
    const res = await request(`${p.url}/noise?size=${size}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers['content-encoding']).toBe('gzip');
    // 1. nothing read for a while: the upstream is held back well short of its whole body
    await sleep(1500);
    expect(upstream.noiseWritten()).toBeLessThan(size);
    // 2. reading resumes: the whole body arrives, intact
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    const plain = zlib.gunzipSync(Buffer.concat(chunks));
    expect(plain.length).toBe(size);
    expect(plain.equals(noiseBody(size))).toBe(true);
  }, 60_000);

  test('HTTP/2 downstream: compressed, decodes to the upstream\'s bytes', async () => {
    const p = await proxyWith([compressor(gzipLib())]);
    const got = await h2get(p.url, { ':path': '/chunked?size=500000', 'accept-encoding': 'gzip, deflate' });
    expect(got.status).toBe(200);
    expect(got.headers['content-encoding']).toBe('gzip');
    expect(decode(got).equals(textBody(500_000))).toBe(true);
  });

  test('trailers follow the compressed body, on HTTP/1.1 and HTTP/2', async () => {
    const p = await proxyWith([compressor(brotliLib())]);
    const sum = createHash('sha256').update(textBody(100_000)).digest('hex');
    const h1 = await get(`${p.url}/trailers?size=100000`, { 'accept-encoding': 'br' });
    expect(h1.headers['content-encoding']).toBe('br');
    expect(decode(h1).equals(textBody(100_000))).toBe(true);
    expect(h1.trailers['x-checksum']).toBe(sum);
    const h2 = await h2get(p.url, { ':path': '/trailers?size=100000', 'accept-encoding': 'br' });
    expect(h2.headers['content-encoding']).toBe('br');
    expect(decode(h2).equals(textBody(100_000))).toBe(true);
    expect(h2.trailers['x-checksum']).toBe(sum);
  });
});

describe('compressor filter: what it leaves alone', () => {
  test('small bodies, unlisted types, encoded responses and clients without Accept-Encoding get the upstream\'s bytes', async () => {
    const p = await proxyWith([compressor(gzipLib(), { response_direction_config: { common_config: { min_content_length: 100, content_type: ['text/plain'] } } })]);
    const small = await get(`${p.url}/text?size=99`, { 'accept-encoding': 'gzip' });
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(small.headers['content-length']).toBe('99');
    expect(small.raw.equals(textBody(99))).toBe(true);
    const image = await get(`${p.url}/text?size=5000&type=image/png`, { 'accept-encoding': 'gzip' });
    expect(image.headers['content-encoding']).toBeUndefined();
    expect(image.headers.vary).toBeUndefined();
    const encoded = await get(`${p.url}/encoded?size=5000`, { 'accept-encoding': 'gzip' });
    expect(encoded.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(encoded.raw).equals(textBody(5000))).toBe(true);
    const plain = await get(`${p.url}/text?size=5000`);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toBe('Accept-Encoding');
    expect(plain.raw.equals(textBody(5000))).toBe(true);
    const identity = await get(`${p.url}/text?size=5000`, { 'accept-encoding': 'identity' });
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(await stat(p, 'gzip.response.content_length_too_small')).toBe(1);
    expect(await stat(p, 'gzip.no_accept_header')).toBe(1);
    expect(await stat(p, 'gzip.header_identity')).toBe(1);
    expect(await stat(p, 'gzip.response.not_compressed')).toBe(5);
    expect(await stat(p, 'gzip.response.compressed')).toBe(0);
  });

  test('gRPC over HTTP/2 is not compressed (not a default content type); its trailers pass', async () => {
    const grpcUpstream = http2.createServer();
    grpcUpstream.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' }));
      const message = Buffer.concat([Buffer.from([0, 0, 0, 0x10, 0]), textBody(0x1000)]);
      stream.end(message);
    });
    await new Promise<void>((resolve) => grpcUpstream.listen(0, '127.0.0.1', resolve));
    try {
      const port = (grpcUpstream.address() as AddressInfo).port;
      const p = await proxyWith([compressor(gzipLib())], [cluster('backend', [port], {
        typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, explicit_http_config: { http2_protocol_options: {} } } },
      })]);
      const got = await h2get(p.url, { ':method': 'POST', ':path': '/pkg.Svc/Call', 'content-type': 'application/grpc', te: 'trailers', 'accept-encoding': 'gzip' });
      expect(got.headers['content-encoding']).toBeUndefined();
      expect(got.raw.length).toBe(5 + 0x1000);
      expect(got.trailers['grpc-status']).toBe('0');
      expect(got.trailers['grpc-message']).toBe('fine');
    } finally {
      // The proxy's pooled HTTP/2 session keeps the server open until the proxy is gone.
      for (const p of running.splice(0)) await p.stop();
      await new Promise((resolve) => grpcUpstream.close(resolve));
    }
  });
});

describe('compressor filter beside mirroring', () => {
  const MIRROR = { name: MIRROR_FILTER_NAME, typed_config: { '@type': MIRROR_TYPE } };

  test('a compared request: the comparison sees the upstream\'s bytes, the client gets them compressed', async () => {
    const candidate = await startCompressUpstream();
    try {
      const p = await proxyWith([compressor(gzipLib()), MIRROR], [cluster('backend', [upstream.port]), cluster('candidate', [candidate.port])], {},
        [extRoute('/', 'backend', [{ name: 'cand', cluster: 'candidate', compare: {} }])]);
      const got = await get(`${p.url}/text?size=20000&type=application/json`, { 'accept-encoding': 'gzip' });
      expect(got.headers['content-encoding']).toBe('gzip');
      expect(decode(got).equals(textBody(20_000))).toBe(true);
      let outcomes: Record<string, number> = {};
      for (let i = 0; i < 200 && Object.keys(outcomes).length === 0; i++) {
        const report = JSON.parse((await fetchText(`${p.adminUrl}/mirror/compare?format=json`)).body) as { policies: Array<{ outcomes: Record<string, number> }> };
        outcomes = Object.fromEntries(Object.entries(report.policies[0]!.outcomes).filter(([, n]) => n > 0));
        if (Object.keys(outcomes).length === 0) await sleep(50);
      }
      // The candidate's answer is the same bytes, uncompressed: a match only if the primary's were seen uncompressed too.
      expect(outcomes).toEqual({ match: 1 });
    } finally {
      for (const p of running.splice(0)) await p.stop();
      await candidate.close();
    }
  });

  test('a sync shadow holds the response; the held body is compressed when it is let go', async () => {
    const mirror = await startUpstream({ name: 'mirror', delayMs: 200 });
    try {
      const p = await proxyWith([compressor(brotliLib()), MIRROR], [cluster('backend', [upstream.port]), cluster('mirror', [mirror.port])], {},
        [extRoute('/', 'backend', [{ name: 'sync', cluster: 'mirror', mode: 'SYNC', sync_timeout: '2s' }])]);
      const got = await get(`${p.url}/chunked?size=300000`, { 'accept-encoding': 'br' });
      expect(got.headers['content-encoding']).toBe('br');
      expect(decode(got).equals(textBody(300_000))).toBe(true);
      expect(mirror.requests.length).toBe(1);
    } finally {
      for (const p of running.splice(0)) await p.stop();
      await mirror.close();
    }
  });
});
