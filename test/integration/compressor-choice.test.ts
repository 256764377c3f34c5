import * as zlib from 'node:zlib';
import { request } from 'undici';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type CompressUpstream, brotliLib, compressor, gzipLib, startCompressUpstream, textBody } from '../harness/compress-upstream';
import { type TestProxy, startProxy, statValue } from '../harness/proxy';

// The compressor's decisions with real sockets: which encoding by the client's q-values when two
// compressors share a chain, ETags, Vary, no-transform, the runtime flag, per-route settings,
// Accept-Encoding removal, what is never compressed, and config refused by path.

type Json = Record<string, unknown>;
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute';
const FILTER_CONFIG = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';
const ZSTD = 'type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd';

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

async function proxyWith(filters: Json[], routes: Json[] = [route('/', 'backend')]): Promise<TestProxy> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(routes), { hcm: { http_filters: [...filters, ROUTER] } })], clusters: [cluster('backend', [upstream.port])] }));
  running.push(p);
  return p;
}

/** The response's content-encoding (undefined: identity), after checking its body decodes to the upstream's. */
async function encodingOf(url: string, acceptEncoding: string | null, size = 4096, method = 'GET'): Promise<{ encoding: string | undefined; headers: Record<string, unknown> }> {
  const res = await request(url, { method: method as 'GET', headers: acceptEncoding === null ? {} : { 'accept-encoding': acceptEncoding } });
  const raw = Buffer.from(await res.body.arrayBuffer());
  const encoding = res.headers['content-encoding'] as string | undefined;
  const plain = encoding === 'gzip' ? zlib.gunzipSync(raw) : encoding === 'br' ? zlib.brotliDecompressSync(raw) : raw;
  if (method !== 'HEAD' && res.statusCode === 200 && !plain.equals(textBody(size))) throw new Error(`body of ${url} does not decode to the upstream's`);
  return { encoding, headers: res.headers };
}

const stat = (p: TestProxy, name: string): Promise<number> => statValue(p.adminUrl, `http.ingress_http.compressor.text.${name}`);
const withHeader = (path: string, name: string, value: string): string => `${path}${path.includes('?') ? '&' : '?'}h=${encodeURIComponent(`${name}:${value}`)}`;

describe('two compressors in one chain: the client\'s preference', () => {
  test('highest q-value wins; equal ones go by header order; * is the chain\'s first; q=0 rules out; counted per filter', async () => {
    const p = await proxyWith([compressor(gzipLib(), {}, 'gzip'), compressor(brotliLib(), {}, 'br')]);
    const enc = async (accept: string): Promise<string | undefined> => (await encodingOf(`${p.url}/text`, accept)).encoding;
    expect(await enc('gzip;q=0.5, br')).toBe('br');
    expect(await enc('gzip, br;q=0.8')).toBe('gzip');
    expect(await enc('br, gzip')).toBe('br');
    expect(await enc('*')).toBe('gzip');
    expect(await enc('br;q=0, *')).toBe('gzip');
    expect(await enc('gzip;q=zero, br;q=0.1')).toBe('br');
    expect(await enc('deflate')).toBeUndefined();
    expect(await enc('gzip;q=0, br;q=0')).toBeUndefined();
    expect(await enc('identity, gzip;q=0.5')).toBeUndefined();
    expect(await stat(p, 'brotli.header_compressor_used')).toBe(3);
    expect(await stat(p, 'gzip.header_compressor_overshadowed')).toBe(3);
    expect(await stat(p, 'gzip.header_compressor_used')).toBe(1);
    expect(await stat(p, 'gzip.header_wildcard')).toBe(2);
    expect(await stat(p, 'brotli.header_not_valid')).toBe(2);
    expect(await stat(p, 'gzip.header_identity')).toBe(1);
  });

  test('choose_first breaks a tie; a compressor that does not take the content type is out of the choice', async () => {
    const p = await proxyWith([
      compressor(gzipLib(), { response_direction_config: { common_config: { content_type: ['text/plain', 'application/json'] } } }, 'gzip'),
      compressor(brotliLib(), { choose_first: true, response_direction_config: { common_config: { content_type: ['application/json'] } } }, 'br'),
    ]);
    expect((await encodingOf(`${p.url}/text?type=application/json`, 'gzip, br')).encoding).toBe('br');
    expect((await encodingOf(`${p.url}/text?type=text/plain`, 'br, gzip;q=0.5')).encoding).toBe('gzip');
  });
});

describe('what the compressor does to headers', () => {
  test('a strong ETag is dropped and a weak one kept; with disable_on_etag_header neither is compressed', async () => {
    const p = await proxyWith([compressor(gzipLib())]);
    const strong = await encodingOf(`${p.url}${withHeader('/text', 'etag', '"abc"')}`, 'gzip');
    expect(strong.encoding).toBe('gzip');
    expect(strong.headers.etag).toBeUndefined();
    const weak = await encodingOf(`${p.url}${withHeader('/text', 'etag', 'W/"abc"')}`, 'gzip');
    expect(weak.encoding).toBe('gzip');
    expect(weak.headers.etag).toBe('W/"abc"');
    const q = await proxyWith([compressor(gzipLib(), { response_direction_config: { disable_on_etag_header: true } })]);
    const kept = await encodingOf(`${q.url}${withHeader('/text', 'etag', '"abc"')}`, 'gzip');
    expect(kept.encoding).toBeUndefined();
    expect(kept.headers.etag).toBe('"abc"');
    expect(await stat(q, 'gzip.not_compressed_etag')).toBe(1);
  });

  test('Vary gains Accept-Encoding once; Cache-Control no-transform is respected; HEAD and local replies are never encoded', async () => {
    const p = await proxyWith([compressor(gzipLib())], [
      { match: { prefix: '/local' }, direct_response: { status: 200, body: { inline_string: 'a local reply, long enough to be worth compressing' } } },
      route('/', 'backend'),
    ]);
    expect((await encodingOf(`${p.url}${withHeader('/text', 'vary', 'Origin')}`, 'gzip')).headers.vary).toBe('Origin, Accept-Encoding');
    expect((await encodingOf(`${p.url}${withHeader('/text', 'vary', 'accept-encoding')}`, 'gzip')).headers.vary).toBe('accept-encoding');
    expect((await encodingOf(`${p.url}${withHeader('/text', 'cache-control', 'public, No-Transform')}`, 'gzip')).encoding).toBeUndefined();
    expect((await encodingOf(`${p.url}/text`, 'gzip', 4096, 'HEAD')).encoding).toBeUndefined();
    const local = await request(`${p.url}/local`, { headers: { 'accept-encoding': 'gzip' } });
    expect(local.statusCode).toBe(200);
    expect(local.headers['content-encoding']).toBeUndefined();
    expect(await local.body.text()).toBe('a local reply, long enough to be worth compressing');
  });

  test('remove_accept_encoding_header keeps the upstream from compressing; a route\'s override puts it back', async () => {
    const p = await proxyWith([compressor(gzipLib(), { response_direction_config: { remove_accept_encoding_header: true } })], [
      { ...route('/keep', 'backend', { prefix_rewrite: '/text' }), typed_per_filter_config: { 'envoy.filters.http.compressor': {
        '@type': PER_ROUTE, overrides: { response_direction_config: { remove_accept_encoding_header: false } } } } },
      route('/', 'backend'),
    ]);
    expect((await encodingOf(`${p.url}/text?n=removed`, 'gzip')).encoding).toBe('gzip');
    expect(upstream.requests.find((r) => r.url === '/text?n=removed')!.headers['accept-encoding']).toBeUndefined();
    expect((await encodingOf(`${p.url}/keep?n=kept`, 'gzip')).encoding).toBe('gzip');
    expect(upstream.requests.find((r) => r.url === '/text?n=kept')!.headers['accept-encoding']).toBe('gzip');
  });
});

describe('turning compression on and off', () => {
  test('the enabled runtime flag, and a route\'s overrides turning it on; CompressorPerRoute.disabled and FilterConfig.disabled turn it off', async () => {
    const p = await proxyWith([compressor(gzipLib(), { response_direction_config: { common_config: { enabled: { default_value: false, runtime_key: 'compress.on' } } } })], [
      { ...route('/on', 'backend', { prefix_rewrite: '/text' }), typed_per_filter_config: { 'envoy.filters.http.compressor': { '@type': PER_ROUTE, overrides: { response_direction_config: {} } } } },
      { ...route('/off', 'backend', { prefix_rewrite: '/text' }), typed_per_filter_config: { 'envoy.filters.http.compressor': { '@type': PER_ROUTE, disabled: true } } },
      { ...route('/skip', 'backend', { prefix_rewrite: '/text' }), typed_per_filter_config: { 'envoy.filters.http.compressor': { '@type': FILTER_CONFIG, disabled: true } } },
      route('/', 'backend'),
    ]);
    expect((await encodingOf(`${p.url}/text`, 'gzip')).encoding).toBeUndefined();
    expect((await encodingOf(`${p.url}/on`, 'gzip')).encoding).toBe('gzip');
    p.proxy.runtime.modify('compress.on', 'true');
    expect((await encodingOf(`${p.url}/text`, 'gzip')).encoding).toBe('gzip');
    expect((await encodingOf(`${p.url}/off`, 'gzip')).encoding).toBeUndefined();
    expect((await encodingOf(`${p.url}/skip`, 'gzip')).encoding).toBeUndefined();
    p.proxy.runtime.modify('compress.on', 'false');
    expect((await encodingOf(`${p.url}/text`, 'gzip')).encoding).toBeUndefined();
  });

  test('the older top-level fields, without response_direction_config: their stat names have no response. part', async () => {
    const p = await proxyWith([{ name: 'envoy.filters.http.compressor', typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor',
      content_length: 1000, content_type: ['application/json'], compressor_library: gzipLib(),
    } }]);
    expect((await encodingOf(`${p.url}/text?size=999&type=application/json`, 'gzip', 999)).encoding).toBeUndefined();
    expect((await encodingOf(`${p.url}/text?size=5000&type=text/plain`, 'gzip', 5000)).encoding).toBeUndefined();
    expect((await encodingOf(`${p.url}/text?size=5000&type=${encodeURIComponent('application/json; charset=utf-8')}`, 'gzip', 5000)).encoding).toBe('gzip');
    expect(await stat(p, 'gzip.compressed')).toBe(1);
    expect(await stat(p, 'gzip.not_compressed')).toBe(2);
    expect(await stat(p, 'gzip.content_length_too_small')).toBe(1);
    expect(await stat(p, 'gzip.request.not_compressed')).toBe(3);
  });
});

describe('compressor config', () => {
  function errors(filters: Json[], routes: Json[] = [route('/', 'backend')]): string[] {
    try {
      loadBootstrapText(bootstrap({ listeners: [listener(routeConfig(routes), { hcm: { http_filters: [...filters, ROUTER] } })], clusters: [cluster('backend', [1])] }));
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.issues.map((i) => `${i.path}: ${i.message}`);
    }
  }
  const at = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';

  test('zstd is refused by path, saying why', () => {
    expect(errors([compressor({ name: 'z', typed_config: { '@type': ZSTD, compression_level: 10 } })]))
      .toEqual([`${at}.compressor_library.typed_config: zstd compression is not supported by sidemirror: Node 20's zlib has no zstd; use gzip or brotli`]);
  });

  test('every other error by path, all at once', () => {
    const found = errors([
      compressor(gzipLib({ window_bits: 16, memory_level: 0, chunk_size: 100 }), {
        request_direction_config: {},
        response_direction_config: { common_config: { enabled: { default_value: true } } },
      }, 'a'),
      compressor(brotliLib({ quality: 12, input_block_bits: 25 }), {}, 'b'),
      { name: 'c', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor' } },
    ], [{ ...route('/', 'backend'), typed_per_filter_config: { 'envoy.filters.http.compressor': { '@type': PER_ROUTE } } }]);
    const at2 = at.replace('http_filters[0]', 'http_filters[1]');
    const at3 = at.replace('http_filters[0]', 'http_filters[2]');
    expect(found).toEqual(expect.arrayContaining([
      `${at}.compressor_library.typed_config.memory_level: must be between 1 and 9`,
      `${at}.compressor_library.typed_config.window_bits: must be between 9 and 15`,
      `${at}.compressor_library.typed_config.chunk_size: must be between 4096 and 65536`,
      `${at}.request_direction_config: request compression is not supported by sidemirror`,
      `${at}.response_direction_config.common_config.enabled.runtime_key: runtime_key is required`,
      `${at2}.compressor_library.typed_config.quality: must be between 0 and 11`,
      `${at2}.compressor_library.typed_config.input_block_bits: must be between 16 and 24`,
      `${at3}.compressor_library: compressor_library is required`,
    ]));
    expect(found.some((e) => /typed_per_filter_config\["envoy.filters.http.compressor"\]: one of disabled or overrides is required/.test(e))).toBe(true);
    expect(found).toHaveLength(9);
  });
});
