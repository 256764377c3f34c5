import { Client } from 'undici';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// envoy.filters.http.local_ratelimit with real sockets: 429 "local_rate_limited" once the bucket
// is empty (the local_ratelimit sandbox's config), the refill, enabled and enforced fractions
// (unset: 0 %) with runtime keys, headers when enforced and when not, per-route buckets, one
// bucket per downstream connection, X-RateLimit-* headers, gRPC, and config errors by path.

jest.setTimeout(30_000);

type Json = Record<string, unknown>;
const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const FILTER_CONFIG = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const NAME = 'envoy.filters.http.local_ratelimit';
const percent = (n: number, runtimeKey?: string): Json => ({ default_value: { numerator: n, denominator: 'HUNDRED' }, ...(runtimeKey ? { runtime_key: runtimeKey } : {}) });
/** A bucket that does not refill within a test. */
const slowBucket = (maxTokens: number): Json => ({ max_tokens: maxTokens, tokens_per_fill: maxTokens, fill_interval: '3600s' });
const config = (fields: Json): Json => ({ '@type': LRL, stat_prefix: 'http_local_rate_limiter', ...fields });
const filter = (fields: Json): Json => ({ name: NAME, typed_config: config(fields) });
const on = { filter_enabled: percent(100), filter_enforced: percent(100) };

let upstream: Upstream;
const running: TestProxy[] = [];

beforeAll(async () => {
  upstream = await startUpstream({ name: 'upstream' });
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

function configErrors(filters: Json[], routes: Json[] = [route('/', 'backend')]): string[] {
  try {
    loadBootstrapText(bootstrap({ listeners: [listener(routeConfig(routes), { hcm: { http_filters: [...filters, ROUTER] } })], clusters: [cluster('backend', [1])] }));
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

const stat = (p: TestProxy, name: string, prefix = 'http_local_rate_limiter'): Promise<number> => statValue(p.adminUrl, `${prefix}.http_local_rate_limit.${name}`);
const statuses = async (p: TestProxy, path: string, n: number, headers: Record<string, string> = {}): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await fetchText(`${p.url}${path}`, { headers })).status);
  return out;
};

describe('the bucket', () => {
  test('the sandbox\'s config: two requests pass, the third gets 429 local_rate_limited with its response headers; counted', async () => {
    const p = await proxyWith([filter({
      token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: '3600s' },
      filter_enabled: percent(100, 'local_rate_limit_enabled'),
      filter_enforced: percent(100, 'local_rate_limit_enforced'),
      response_headers_to_add: [{ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'x-local-rate-limit', value: 'true' } }],
      local_rate_limit_per_downstream_connection: false,
    })]);
    const before = upstream.requests.length;
    const ok = await fetchText(`${p.url}/`);
    expect(ok.status).toBe(200);
    // response_headers_to_add is for the refusal only.
    expect(ok.headers['x-local-rate-limit']).toBeUndefined();
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    const limited = await fetchText(`${p.url}/`);
    expect(limited.status).toBe(429);
    expect(limited.body).toBe('local_rate_limited');
    expect(limited.headers['x-local-rate-limit']).toBe('true');
    expect(limited.headers['x-envoy-ratelimited']).toBeUndefined();
    expect(upstream.requests.length).toBe(before + 2);
    expect(await stat(p, 'enabled')).toBe(3);
    expect(await stat(p, 'ok')).toBe(2);
    expect(await stat(p, 'rate_limited')).toBe(1);
    expect(await stat(p, 'enforced')).toBe(1);
    const prom = (await fetchText(`${p.adminUrl}/stats/prometheus`)).body;
    expect(prom).toContain('envoy_http_local_rate_limit_rate_limited{envoy_local_http_ratelimit_prefix="http_local_rate_limiter"} 1');
  });

  test('tokens come back with time, never more than max_tokens', async () => {
    const p = await proxyWith([filter({ ...on, token_bucket: { max_tokens: 1, fill_interval: '1.5s' } })]);
    const first = performance.now();
    expect(await statuses(p, '/', 2)).toEqual([200, 429]);
    // One token per 1.5 s: after 1.6 s there is one again, and only one.
    await sleep(Math.max(0, 1600 - (performance.now() - first)));
    expect((await statuses(p, '/', 2))[0]).toBe(200);
    await sleep(3200);
    expect(await statuses(p, '/', 2)).toEqual([200, 429]);
  });

  test('status: a configured code, and codes below 400 mean 429 as in Envoy', async () => {
    const p = await proxyWith([filter({ ...on, token_bucket: slowBucket(1), status: { code: 'ServiceUnavailable' } })]);
    expect(await statuses(p, '/', 2)).toEqual([200, 503]);
    const q = await proxyWith([filter({ ...on, token_bucket: slowBucket(1), status: { code: 'OK' } })]);
    expect(await statuses(q, '/', 2)).toEqual([200, 429]);
  });
});

describe('enabled and enforced', () => {
  test('filter_enabled unset is 0 %: nothing is limited or counted', async () => {
    const p = await proxyWith([filter({ token_bucket: slowBucket(1), filter_enforced: percent(100) })]);
    expect(await statuses(p, '/', 3)).toEqual([200, 200, 200]);
    expect(await stat(p, 'enabled')).toBe(0);
  });

  test('enabled but filter_enforced unset: counted as rate limited, sent upstream with the not-enforced headers', async () => {
    const p = await proxyWith([filter({
      filter_enabled: percent(100), token_bucket: slowBucket(1),
      request_headers_to_add_when_not_enforced: [{ header: { key: 'x-would-be-limited', value: 'yes' } }],
    })]);
    const before = upstream.requests.length;
    expect(await statuses(p, '/', 2)).toEqual([200, 200]);
    expect(upstream.requests.slice(before).map((r) => r.headers['x-would-be-limited'])).toEqual([undefined, 'yes']);
    expect(await stat(p, 'rate_limited')).toBe(1);
    expect(await stat(p, 'enforced')).toBe(0);
  });

  test('runtime keys override the fractions', async () => {
    const p = await proxyWith([filter({ token_bucket: slowBucket(1), filter_enabled: percent(100, 'lrl.enabled'), filter_enforced: percent(100, 'lrl.enforced') })]);
    p.proxy.runtime.modify('lrl.enforced', '0');
    expect(await statuses(p, '/', 2)).toEqual([200, 200]);
    p.proxy.runtime.modify('lrl.enforced', '100');
    expect(await statuses(p, '/', 1)).toEqual([429]);
    p.proxy.runtime.modify('lrl.enabled', '0');
    expect(await statuses(p, '/', 1)).toEqual([200]);
  });

  test('a request an earlier filter answered takes no token and is not counted', async () => {
    const fault = { name: 'envoy.filters.http.fault', typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
      abort: { http_status: 418, percentage: { numerator: 100 } }, headers: [{ name: 'x-abort', present_match: true }],
    } };
    const p = await proxyWith([fault, filter({ ...on, token_bucket: slowBucket(1) })]);
    expect(await statuses(p, '/', 2, { 'x-abort': '1' })).toEqual([418, 418]);
    expect(await stat(p, 'enabled')).toBe(0);
    expect(await statuses(p, '/', 2)).toEqual([200, 429]);
  });
});

describe('buckets per route and per connection', () => {
  test('a per-route config has its own bucket and stat_prefix; FilterConfig.disabled turns the filter off for a route', async () => {
    const p = await proxyWith([filter({ ...on, token_bucket: slowBucket(2) })], [
      { ...route('/strict', 'backend'), typed_per_filter_config: { [NAME]: config({ ...on, stat_prefix: 'strict', token_bucket: slowBucket(1) }) } },
      { ...route('/free', 'backend'), typed_per_filter_config: { [NAME]: { '@type': FILTER_CONFIG, disabled: true } } },
      route('/', 'backend'),
    ]);
    expect(await statuses(p, '/strict', 2)).toEqual([200, 429]);
    expect(await statuses(p, '/', 3)).toEqual([200, 200, 429]);
    expect(await statuses(p, '/free', 3)).toEqual([200, 200, 200]);
    expect(await stat(p, 'rate_limited', 'strict')).toBe(1);
    expect(await stat(p, 'rate_limited')).toBe(1);
  });

  test('local_rate_limit_per_downstream_connection: each connection has its own bucket', async () => {
    const p = await proxyWith([filter({ ...on, token_bucket: slowBucket(1), local_rate_limit_per_downstream_connection: true })]);
    const a = new Client(p.url);
    const b = new Client(p.url);
    try {
      const get = async (c: Client): Promise<number> => {
        const r = await c.request({ path: '/', method: 'GET' });
        await r.body.text();
        return r.statusCode;
      };
      expect([await get(a), await get(a)]).toEqual([200, 429]);
      expect([await get(b), await get(b)]).toEqual([200, 429]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('responses', () => {
  test('X-RateLimit-* headers (DRAFT_VERSION_03) on passed and refused responses', async () => {
    const p = await proxyWith([filter({ ...on, token_bucket: slowBucket(2), enable_x_ratelimit_headers: 'DRAFT_VERSION_03' })]);
    const first = await fetchText(`${p.url}/`);
    expect([first.headers['x-ratelimit-limit'], first.headers['x-ratelimit-remaining'], first.headers['x-ratelimit-reset']]).toEqual(['2', '1', '0']);
    await fetchText(`${p.url}/`);
    const refused = await fetchText(`${p.url}/`);
    expect(refused.status).toBe(429);
    // Empty: one token takes 1800 s at 2 per hour.
    expect([refused.headers['x-ratelimit-limit'], refused.headers['x-ratelimit-remaining'], refused.headers['x-ratelimit-reset']]).toEqual(['2', '0', '1800']);
    const plain = await proxyWith([filter({ ...on, token_bucket: slowBucket(2) })]);
    expect((await fetchText(`${plain.url}/`)).headers['x-ratelimit-limit']).toBeUndefined();
  });

  test('a gRPC request is refused with UNAVAILABLE, or RESOURCE_EXHAUSTED when asked', async () => {
    const grpc = { method: 'POST' as const, headers: { 'content-type': 'application/grpc' }, body: Buffer.alloc(5) };
    const p = await proxyWith([filter({ ...on, token_bucket: slowBucket(1) })]);
    await fetchText(`${p.url}/pkg.Svc/Call`, grpc);
    const r = await fetchText(`${p.url}/pkg.Svc/Call`, grpc);
    expect([r.status, r.headers['grpc-status'], r.headers['grpc-message']]).toEqual([200, '14', 'local_rate_limited']);
    const q = await proxyWith([filter({ ...on, token_bucket: slowBucket(1), rate_limited_as_resource_exhausted: true })]);
    await fetchText(`${q.url}/pkg.Svc/Call`, grpc);
    expect((await fetchText(`${q.url}/pkg.Svc/Call`, grpc)).headers['grpc-status']).toBe('8');
  });
});

describe('config errors name their paths', () => {
  const base = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';

  test('stat_prefix, the bucket\'s fields, the status code, and a per-route config without a bucket, all at once', () => {
    const errors = configErrors(
      [{ name: NAME, typed_config: { '@type': LRL, token_bucket: { max_tokens: 0, tokens_per_fill: 0 }, status: { code: 'Empty' } } }],
      [{ ...route('/', 'backend'), typed_per_filter_config: { [NAME]: config({}) } }],
    );
    expect(errors).toEqual([
      `${base}.route_config.virtual_hosts[0].routes[0].typed_per_filter_config["${NAME}"].token_bucket: token_bucket is required in a per-route config`,
      `${base}.http_filters[0].typed_config.stat_prefix: stat_prefix is required`,
      `${base}.http_filters[0].typed_config.status.code: code is required`,
      `${base}.http_filters[0].typed_config.token_bucket.max_tokens: must be greater than 0`,
      `${base}.http_filters[0].typed_config.token_bucket.tokens_per_fill: must be greater than 0`,
      `${base}.http_filters[0].typed_config.token_bucket.fill_interval: fill_interval is required`,
    ]);
  });

  test('descriptors, which need the route\'s rate_limits actions, are refused by name', () => {
    const errors = configErrors([filter({ ...on, token_bucket: slowBucket(1), descriptors: [{ entries: [{ key: 'k', value: 'v' }], token_bucket: slowBucket(1) }] })]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/typed_config\.descriptors: .*not supported by sidemirror/);
  });
});
