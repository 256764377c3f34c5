import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { HCM_TYPE, ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, closedPort, startUpstream } from '../harness/upstream';

// The HTTP filter chain with real sockets: filters in order before the router, per-route
// settings and FilterConfig.disabled, local replies, and the fault and health_check filters.

type Json = Record<string, unknown>;
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const HEALTH = 'type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck';
const FILTER_CONFIG = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };

const fault = (config: Json, extra: Json = {}): Json => ({ name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT, ...config }, ...extra });
const abortAll = (status = 503): Json => ({ abort: { http_status: status, percentage: { numerator: 100 } } });

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

async function proxyWith(filters: Json[], routes: Json[] = [route('/', 'backend')], clusters: Json[] = [cluster('backend', [upstream.port])], vhost: Json = {}): Promise<TestProxy> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(routes, vhost), { hcm: { http_filters: [...filters, ROUTER] } })], clusters }));
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

describe('fault filter', () => {
  test('aborts every request with its status, before the router; counted', async () => {
    const before = upstream.requests.length;
    const p = await proxyWith([fault(abortAll(418))]);
    const r = await fetchText(`${p.url}/x`);
    expect(r.status).toBe(418);
    expect(r.body).toBe('fault filter abort');
    expect(upstream.requests.length).toBe(before);
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.aborts_injected')).toBe(1);
  });

  test('a gRPC request is aborted with a gRPC status on HTTP 200', async () => {
    const p = await proxyWith([fault({ abort: { grpc_status: 14, percentage: { numerator: 100 } } })]);
    const r = await fetchText(`${p.url}/pkg.Svc/Call`, { method: 'POST', headers: { 'content-type': 'application/grpc' }, body: Buffer.alloc(5) });
    expect(r.status).toBe(200);
    expect(r.headers['grpc-status']).toBe('14');
  });

  test('0 % (the default percentage) never aborts, and the runtime key raises it', async () => {
    const p = await proxyWith([fault({ abort: { http_status: 503 } })]);
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    p.proxy.runtime.modify('fault.http.abort.abort_percent', '100');
    expect((await fetchText(`${p.url}/`)).status).toBe(503);
  });

  test('a fixed delay holds the request, then it goes upstream', async () => {
    const p = await proxyWith([fault({ delay: { fixed_delay: '0.3s', percentage: { numerator: 100 } } })]);
    const r = await fetchText(`${p.url}/slow`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('upstream');
    expect(r.ms).toBeGreaterThanOrEqual(290);
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.delays_injected')).toBe(1);
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')).toBe(0);
  });

  test('header-controlled delay and abort, capped by the configured percentage', async () => {
    const p = await proxyWith([fault({ delay: { header_delay: {}, percentage: { numerator: 100 } }, abort: { header_abort: {}, percentage: { numerator: 100 } } })]);
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    const delayed = await fetchText(`${p.url}/`, { headers: { 'x-envoy-fault-delay-request': '200' } });
    expect(delayed.status).toBe(200);
    expect(delayed.ms).toBeGreaterThanOrEqual(190);
    expect((await fetchText(`${p.url}/`, { headers: { 'x-envoy-fault-abort-request': '429' } })).status).toBe(429);
    // A percentage header of 0 turns the abort off for this request.
    expect((await fetchText(`${p.url}/`, { headers: { 'x-envoy-fault-abort-request': '429', 'x-envoy-fault-abort-request-percentage': '0' } })).status).toBe(200);
    // Out of range: no abort.
    expect((await fetchText(`${p.url}/`, { headers: { 'x-envoy-fault-abort-request': '700' } })).status).toBe(200);
  });

  test('headers and upstream_cluster narrow the requests that get faults', async () => {
    const other = await startUpstream({ name: 'other' });
    try {
      const p = await proxyWith(
        [fault({ ...abortAll(500), headers: [{ name: 'x-chaos', exact_match: 'on' }], upstream_cluster: 'backend' })],
        [route('/other', 'other'), route('/', 'backend')],
        [cluster('backend', [upstream.port]), cluster('other', [other.port])],
      );
      expect((await fetchText(`${p.url}/`)).status).toBe(200);
      expect((await fetchText(`${p.url}/`, { headers: { 'x-chaos': 'on' } })).status).toBe(500);
      expect((await fetchText(`${p.url}/other`, { headers: { 'x-chaos': 'on' } })).status).toBe(200);
    } finally {
      await other.close();
    }
  });

  test('max_active_faults: a second delayed request past the limit is not delayed, counted as overflow', async () => {
    const p = await proxyWith([fault({ delay: { fixed_delay: '0.5s', percentage: { numerator: 100 } }, max_active_faults: 1 })]);
    const first = fetchText(`${p.url}/a`);
    await new Promise((r) => setTimeout(r, 100));
    const second = await fetchText(`${p.url}/b`);
    expect(second.ms).toBeLessThan(400);
    expect((await first).ms).toBeGreaterThanOrEqual(490);
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.faults_overflow')).toBe(1);
  });

  test('a client that leaves during a delay frees its fault slot, and nothing goes upstream', async () => {
    const before = upstream.requests.length;
    const p = await proxyWith([fault({ delay: { fixed_delay: '2s', percentage: { numerator: 100 } } })]);
    const ac = new AbortController();
    const pending = fetchText(`${p.url}/gone`, { signal: ac.signal }).catch(() => null);
    await new Promise((r) => setTimeout(r, 150));
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')).toBe(1);
    ac.abort();
    await pending;
    for (let i = 0; i < 40 && (await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')) !== 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')).toBe(0);
    await new Promise((r) => setTimeout(r, 100));
    expect(upstream.requests.length).toBe(before);
  });
});

describe('per-route settings', () => {
  test('a route\'s typed_per_filter_config replaces the filter\'s; FilterConfig.disabled turns it off', async () => {
    const p = await proxyWith([fault(abortAll(503))], [
      route('/quiet', 'backend', {}, {}),
      route('/teapot', 'backend'),
      route('/', 'backend'),
    ].map((r, i) => i === 0
      ? { ...r, typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FILTER_CONFIG, disabled: true } } }
      : i === 1 ? { ...r, typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, ...abortAll(418) } } } : r));
    expect((await fetchText(`${p.url}/quiet`)).status).toBe(200);
    expect((await fetchText(`${p.url}/teapot`)).status).toBe(418);
    expect((await fetchText(`${p.url}/`)).status).toBe(503);
  });

  test('a filter disabled in http_filters runs only where a route names it', async () => {
    const p = await proxyWith([fault(abortAll(503), { disabled: true })], [
      { ...route('/on', 'backend'), typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, ...abortAll(502) } } },
      route('/', 'backend'),
    ]);
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    expect((await fetchText(`${p.url}/on`)).status).toBe(502);
  });

  test('virtual host settings apply below the route\'s', async () => {
    const p = await proxyWith([fault(abortAll(503))], [route('/', 'backend')], undefined,
      { typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FILTER_CONFIG, disabled: true } } });
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
  });

  test('filters run before the router: an abort wins over a direct response and over a missing route', async () => {
    const p = await proxyWith([fault(abortAll(451))], [{ match: { prefix: '/direct' }, direct_response: { status: 200 } }]);
    expect((await fetchText(`${p.url}/direct`)).status).toBe(451);
    expect((await fetchText(`${p.url}/nowhere`)).status).toBe(451);
  });
});

describe('health_check filter', () => {
  const health = (extra: Json = {}): Json => ({
    name: 'envoy.filters.http.health_check',
    typed_config: { '@type': HEALTH, pass_through_mode: false, headers: [{ name: ':path', string_match: { exact: '/healthz' } }], ...extra },
  });

  test('answers /healthz itself; other paths go upstream', async () => {
    const before = upstream.requests.length;
    const p = await proxyWith([health()]);
    const r = await fetchText(`${p.url}/healthz`);
    expect(r.status).toBe(200);
    expect(upstream.requests.length).toBe(before);
    expect((await fetchText(`${p.url}/other`)).body).toBe('upstream');
  });

  test('fails with 503 when a cluster has fewer healthy hosts than its minimum', async () => {
    const dead = await closedPort();
    const p = await proxyWith([health({ cluster_min_healthy_percentages: { backend: { value: 100 }, empty: { value: 50 } } })], undefined,
      [cluster('backend', [upstream.port]), cluster('empty', [])]);
    expect((await fetchText(`${p.url}/healthz`)).status).toBe(503);
    void dead;
  });

  test('pass-through mode forwards the check to the upstream', async () => {
    const before = upstream.requests.length;
    const p = await proxyWith([health({ pass_through_mode: true })]);
    const r = await fetchText(`${p.url}/healthz`);
    expect(r.body).toBe('upstream');
    expect(upstream.requests.length).toBe(before + 1);
  });
});

describe('config errors name their paths', () => {
  const base = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';

  test('an unknown filter is refused unless is_optional', () => {
    const unknown = { name: 'envoy.filters.http.buffer_x', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } };
    expect(configErrors([unknown])).toEqual([`${base}.http_filters[0].typed_config: HTTP filter "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" is not supported by sidemirror`]);
    expect(configErrors([{ ...unknown, is_optional: true }])).toEqual([]);
  });

  test('fault config: abort status out of range, zero delay, missing specifiers — all at once', () => {
    const errors = configErrors([fault({ abort: { http_status: 700 }, delay: { fixed_delay: '0s' } }), fault({ abort: { percentage: { numerator: 1 } } }, { name: 'f2' })]);
    expect(errors).toEqual([
      `${base}.http_filters[0].typed_config.delay.fixed_delay: must be greater than 0s`,
      `${base}.http_filters[0].typed_config.abort.http_status: must be in [200, 600)`,
      `${base}.http_filters[1].typed_config.abort: one of http_status, grpc_status or header_abort is required`,
    ]);
  });

  test('Envoy fields sidemirror does not run are refused by name', () => {
    const errors = configErrors([fault({ ...abortAll(), response_rate_limit: { fixed_limit: { limit_kbps: 1 }, percentage: { numerator: 1 } } })]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('response_rate_limit');
    expect(errors[0]).toContain('not supported by sidemirror');
  });

  test('a per-route config no filter reads is refused, unless optional', () => {
    const r = (v: Json): Json[] => [{ ...route('/', 'backend'), typed_per_filter_config: { x: v } }];
    const path = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config["x"]';
    expect(configErrors([], r({ '@type': ROUTER_TYPE }))).toEqual([`${path}: "${ROUTER_TYPE}" is not a per-route config of any HTTP filter sidemirror runs`]);
    expect(configErrors([], r({ '@type': FILTER_CONFIG, is_optional: true, config: { '@type': ROUTER_TYPE } }))).toEqual([]);
    expect(configErrors([], r({ '@type': FILTER_CONFIG }))).toEqual([`${path}.config: config is required unless disabled is true`]);
  });

  test('the router cannot be disabled', () => {
    try {
      loadBootstrapText(bootstrap({ listeners: [listener(routeConfig([route('/', 'backend')]), { hcm: { http_filters: [{ ...ROUTER, disabled: true }] } })], clusters: [cluster('backend', [1])] }));
      throw new Error('accepted');
    } catch (err) {
      expect((err as ConfigError).issues.map((i) => i.message)).toEqual(['the router cannot be disabled']);
    }
  });
});

void HCM_TYPE;

describe('rbac filter', () => {
  const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
  const RBAC_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute';
  const rbac = (config: Json): Json => ({ name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC, ...config } });
  const policy = (permissions: Json[], principals: Json[] = [{ any: true }]): Json => ({ permissions, principals });

  test('ALLOW: only what a policy matches (method and path) gets through; the rest gets 403; counted', async () => {
    const p = await proxyWith([rbac({
      rules: { action: 'ALLOW', policies: { reads: policy([{ and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { url_path: { path: { prefix: '/public' } } }] } }]) } },
    })]);
    expect((await fetchText(`${p.url}/public/a?x=1`)).status).toBe(200);
    const denied = await fetchText(`${p.url}/private`);
    expect(denied.status).toBe(403);
    expect(denied.body).toBe('RBAC: access denied');
    expect((await fetchText(`${p.url}/public/a`, { method: 'POST', body: 'x' })).status).toBe(403);
    expect(await statValue(p.adminUrl, 'http.ingress_http.rbac.allowed')).toBe(1);
    expect(await statValue(p.adminUrl, 'http.ingress_http.rbac.denied')).toBe(2);
  });

  test('DENY by source IP and by header; not_rule; shadow rules only count', async () => {
    const p = await proxyWith([rbac({
      rules: { action: 'DENY', policies: { loopback: policy([{ not_rule: { url_path: { path: { exact: '/open' } } } }], [{ direct_remote_ip: { address_prefix: '127.0.0.0', prefix_len: 8 } }]) } },
      shadow_rules: { action: 'DENY', policies: { bots: policy([{ any: true }], [{ header: { name: 'user-agent', string_match: { contains: 'bot' } } }]) } },
      shadow_rules_stat_prefix: 'audit_',
    })]);
    expect((await fetchText(`${p.url}/closed`)).status).toBe(403);
    expect((await fetchText(`${p.url}/open`, { headers: { 'user-agent': 'a-bot' } })).status).toBe(200);
    expect(await statValue(p.adminUrl, 'http.ingress_http.rbac.audit_shadow_denied')).toBe(1);
    expect(await statValue(p.adminUrl, 'http.ingress_http.rbac.audit_shadow_allowed')).toBe(1);
  });

  test('destination port, and an RBACPerRoute without rbac turns the filter off for its route', async () => {
    const p = await proxyWith([rbac({ rules: { action: 'ALLOW', policies: { none: policy([{ destination_port: 1 }]) } } })], [
      { ...route('/free', 'backend'), typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': RBAC_PER_ROUTE } } },
      route('/', 'backend'),
    ]);
    expect((await fetchText(`${p.url}/`)).status).toBe(403);
    expect((await fetchText(`${p.url}/free`)).status).toBe(200);
  });

  test('an authenticated principal never matches on plaintext', async () => {
    const p = await proxyWith([rbac({ rules: { action: 'ALLOW', policies: { mtls: policy([{ any: true }], [{ authenticated: {} }]) } } })]);
    expect((await fetchText(`${p.url}/`)).status).toBe(403);
  });

  test('a policy without principals is refused by path', () => {
    const errors = configErrors([rbac({ rules: { policies: { p: { permissions: [{ any: true }] } } } })]);
    expect(errors).toEqual(['static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.rules.policies["p"].principals: at least one of principals is required']);
  });
});
