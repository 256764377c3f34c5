import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { Chromium, findChromium } from '../harness/chromium';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// envoy.filters.http.cors with real sockets: preflights answered by the proxy, actual responses
// given the access-control-* headers, policies merged from route, virtual host and route
// configuration, enabled/shadow fractions with runtime keys, and a real Chromium doing CORS
// through the proxy.

jest.setTimeout(60_000);

type Json = Record<string, unknown>;
const CORS = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
const POLICY = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const FILTER = { name: 'envoy.filters.http.cors', typed_config: { '@type': CORS } };
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const APP = 'https://app.example.com';

const policy = (fields: Json): Json => ({ 'envoy.filters.http.cors': { '@type': POLICY, ...fields } });
const withPolicy = (r: Json, fields: Json): Json => ({ ...r, typed_per_filter_config: policy(fields) });
const preflightHeaders = (origin: string, extra: Record<string, string> = {}): Record<string, string> =>
  ({ origin, 'access-control-request-method': 'PUT', ...extra });

let upstream: Upstream;
const running: TestProxy[] = [];

beforeAll(async () => {
  upstream = await startUpstream({
    respond: (_req, res) => {
      // The upstream's own CORS header is replaced by the filter's for allowed origins.
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes', 'access-control-allow-origin': 'https://upstream.example' });
      res.end('upstream');
    },
  });
});
afterAll(async () => {
  await upstream.close();
});
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});

async function proxyWith(routes: Json[], vhost: Json = {}, filters: Json[] = [FILTER], rc: Json = {}): Promise<TestProxy> {
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig(routes, vhost, rc), { hcm: { http_filters: [...filters, ROUTER] } })],
    clusters: [cluster('backend', [upstream.port])],
  }));
  running.push(p);
  return p;
}

function configErrors(routes: Json[], vhost: Json = {}): string[] {
  try {
    loadBootstrapText(bootstrap({ listeners: [listener(routeConfig(routes, vhost), { hcm: { http_filters: [FILTER, ROUTER] } })], clusters: [cluster('backend', [1])] }));
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

const stat = (p: TestProxy, name: string): Promise<number> => statValue(p.adminUrl, `http.ingress_http.cors.${name}`);

describe('preflight', () => {
  const full = {
    allow_origin_string_match: [{ exact: APP }],
    allow_methods: 'GET, PUT',
    allow_headers: 'x-custom, content-type',
    max_age: '600',
    allow_credentials: true,
  };

  test('an allowed origin\'s preflight is answered by the proxy with the policy\'s headers; counted valid', async () => {
    const before = upstream.requests.length;
    const p = await proxyWith([withPolicy(route('/', 'backend'), full)]);
    const r = await fetchText(`${p.url}/api`, { method: 'OPTIONS', headers: preflightHeaders(APP, { 'access-control-request-headers': 'x-custom' }) });
    expect(r.status).toBe(200);
    expect(r.body).toBe('');
    expect(r.headers['access-control-allow-origin']).toBe(APP);
    expect(r.headers['access-control-allow-methods']).toBe('GET, PUT');
    expect(r.headers['access-control-allow-headers']).toBe('x-custom, content-type');
    expect(r.headers['access-control-max-age']).toBe('600');
    expect(r.headers['access-control-allow-credentials']).toBe('true');
    expect(r.headers['access-control-expose-headers']).toBeUndefined();
    expect(upstream.requests.length).toBe(before);
    expect(await stat(p, 'origin_valid')).toBe(1);
    expect(await stat(p, 'origin_invalid')).toBe(0);
  });

  test('"*" in allow_methods and allow_headers echoes what the browser asked for', async () => {
    const p = await proxyWith([withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ prefix: 'https://' }], allow_methods: '*', allow_headers: '*' })]);
    const r = await fetchText(`${p.url}/`, { method: 'OPTIONS', headers: preflightHeaders(APP, { 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'x-a, x-b' }) });
    expect(r.headers['access-control-allow-methods']).toBe('DELETE');
    expect(r.headers['access-control-allow-headers']).toBe('x-a, x-b');
    expect(r.headers['access-control-allow-credentials']).toBeUndefined();
  });

  test('a disallowed origin\'s preflight goes upstream by default; with forward_not_matching_preflights false it is answered without allow-origin', async () => {
    const p = await proxyWith([
      withPolicy(route('/strict', 'backend'), { allow_origin_string_match: [{ exact: APP }], allow_methods: 'GET', forward_not_matching_preflights: false }),
      withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ exact: APP }], allow_methods: 'GET' }),
    ]);
    const before = upstream.requests.length;
    const forwarded = await fetchText(`${p.url}/open`, { method: 'OPTIONS', headers: preflightHeaders('https://evil.example') });
    expect(forwarded.body).toBe('upstream');
    expect(upstream.requests.length).toBe(before + 1);
    // The upstream's own header is left as it was: the filter adds nothing for a disallowed origin.
    expect(forwarded.headers['access-control-allow-origin']).toBe('https://upstream.example');

    const answered = await fetchText(`${p.url}/strict`, { method: 'OPTIONS', headers: preflightHeaders('https://evil.example') });
    expect(answered.status).toBe(200);
    expect(answered.body).toBe('');
    expect(answered.headers['access-control-allow-origin']).toBeUndefined();
    expect(answered.headers['access-control-allow-methods']).toBe('GET');
    expect(upstream.requests.length).toBe(before + 1);
    expect(await stat(p, 'origin_invalid')).toBe(2);
  });

  test('an OPTIONS without Access-Control-Request-Method is not a preflight: it goes upstream and gets the headers', async () => {
    const p = await proxyWith([withPolicy(route('/', 'backend'), full)]);
    const r = await fetchText(`${p.url}/`, { method: 'OPTIONS', headers: { origin: APP } });
    expect(r.body).toBe('upstream');
    expect(r.headers['access-control-allow-origin']).toBe(APP);
  });

  test('private network access is allowed only when the policy says so and the browser asks', async () => {
    const p = await proxyWith([
      withPolicy(route('/pna', 'backend'), { allow_origin_string_match: [{ exact: APP }], allow_private_network_access: true }),
      withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ exact: APP }] }),
    ]);
    const ask = preflightHeaders(APP, { 'access-control-request-private-network': 'true' });
    expect((await fetchText(`${p.url}/pna`, { method: 'OPTIONS', headers: ask })).headers['access-control-allow-private-network']).toBe('true');
    expect((await fetchText(`${p.url}/pna`, { method: 'OPTIONS', headers: preflightHeaders(APP) })).headers['access-control-allow-private-network']).toBeUndefined();
    expect((await fetchText(`${p.url}/`, { method: 'OPTIONS', headers: ask })).headers['access-control-allow-private-network']).toBeUndefined();
  });
});

describe('actual requests', () => {
  test('an allowed origin gets its origin echoed (replacing the upstream\'s), credentials and exposed headers', async () => {
    const p = await proxyWith([withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ exact: APP }], expose_headers: 'x-upstream', allow_credentials: true })]);
    const r = await fetchText(`${p.url}/data`, { headers: { origin: APP } });
    expect(r.body).toBe('upstream');
    expect(r.headers['access-control-allow-origin']).toBe(APP);
    expect(r.headers['access-control-allow-credentials']).toBe('true');
    expect(r.headers['access-control-expose-headers']).toBe('x-upstream');
    // Preflight-only headers are not added to actual responses, as in Envoy.
    expect(r.headers['access-control-allow-methods']).toBeUndefined();
  });

  test('no Origin: untouched and not counted; a disallowed origin: untouched, counted invalid', async () => {
    const p = await proxyWith([withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ exact: APP }], expose_headers: 'x-upstream' })]);
    const plain = await fetchText(`${p.url}/`);
    expect(plain.headers['access-control-allow-origin']).toBe('https://upstream.example');
    expect(plain.headers['access-control-expose-headers']).toBeUndefined();
    expect(await stat(p, 'origin_valid')).toBe(0);
    expect(await stat(p, 'origin_invalid')).toBe(0);
    const other = await fetchText(`${p.url}/`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBe('https://upstream.example');
    expect(other.headers['access-control-expose-headers']).toBeUndefined();
    expect(await stat(p, 'origin_invalid')).toBe(1);
  });

  test('a matcher that matches "*" allows every origin (the sandbox\'s safe_regex \\*)', async () => {
    const p = await proxyWith([withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ safe_regex: { regex: '\\*' } }] })]);
    const r = await fetchText(`${p.url}/`, { headers: { origin: 'http://anything.test:8080' } });
    expect(r.headers['access-control-allow-origin']).toBe('http://anything.test:8080');
  });

  test('a later filter\'s local reply gets the headers too', async () => {
    const abort = { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT, abort: { http_status: 503, percentage: { numerator: 100 } } } };
    const p = await proxyWith([withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ exact: APP }] })], {}, [FILTER, abort]);
    const r = await fetchText(`${p.url}/`, { headers: { origin: APP } });
    expect(r.status).toBe(503);
    expect(r.headers['access-control-allow-origin']).toBe(APP);
  });

  test('a direct response route is left alone, as Envoy bypasses the filter there', async () => {
    const p = await proxyWith([withPolicy({ match: { prefix: '/' }, direct_response: { status: 204 } }, { allow_origin_string_match: [{ exact: APP }] })]);
    const pre = await fetchText(`${p.url}/`, { method: 'OPTIONS', headers: preflightHeaders(APP) });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    expect(await stat(p, 'origin_valid')).toBe(0);
  });

  test('without any CorsPolicy for the route the filter does nothing', async () => {
    const p = await proxyWith([route('/', 'backend')]);
    const r = await fetchText(`${p.url}/`, { method: 'OPTIONS', headers: preflightHeaders(APP) });
    expect(r.body).toBe('upstream');
    expect(await stat(p, 'origin_valid')).toBe(0);
  });
});

describe('policies per route, virtual host and route configuration (the cors sandbox\'s layout)', () => {
  const vhost = {
    typed_per_filter_config: policy({
      allow_origin_string_match: [{ safe_regex: { regex: '\\*' } }],
      allow_methods: 'GET',
      filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: 'cors.www.enabled' },
      shadow_enabled: { default_value: { numerator: 0, denominator: 'HUNDRED' }, runtime_key: 'cors.www.shadow_enabled' },
    }),
  };
  const routes = [
    route('/cors/open', 'backend'),
    withPolicy(route('/cors/disabled', 'backend'), { filter_enabled: { default_value: { numerator: 0, denominator: 'HUNDRED' } } }),
    withPolicy(route('/cors/restricted', 'backend'), { allow_origin_string_match: [{ safe_regex: { regex: '.*\\.envoyproxy\\.io' } }], allow_methods: 'GET' }),
    withPolicy(route('/cors/inherit', 'backend'), { max_age: '60' }),
  ];

  test('open, disabled and restricted routes behave as the sandbox expects', async () => {
    const p = await proxyWith(routes, vhost);
    const open = await fetchText(`${p.url}/cors/open`, { headers: { origin: 'http://example.com' } });
    expect(open.headers['access-control-allow-origin']).toBe('http://example.com');

    const disabled = await fetchText(`${p.url}/cors/disabled`, { headers: { origin: 'http://example.com' } });
    expect(disabled.headers['access-control-allow-origin']).toBe('https://upstream.example');

    const denied = await fetchText(`${p.url}/cors/restricted`, { headers: { origin: 'http://example.com' } });
    expect(denied.headers['access-control-allow-origin']).toBe('https://upstream.example');
    const allowed = await fetchText(`${p.url}/cors/restricted`, { headers: { origin: 'https://www.envoyproxy.io' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://www.envoyproxy.io');

    // The disabled route is not counted; open + restricted x2.
    expect(await stat(p, 'origin_valid')).toBe(2);
    expect(await stat(p, 'origin_invalid')).toBe(1);
  });

  test('a route policy takes what it leaves unset from the virtual host\'s', async () => {
    const p = await proxyWith(routes, vhost);
    const r = await fetchText(`${p.url}/cors/inherit`, { method: 'OPTIONS', headers: preflightHeaders('http://example.com') });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe('http://example.com');
    expect(r.headers['access-control-allow-methods']).toBe('GET');
    expect(r.headers['access-control-max-age']).toBe('60');
  });

  test('the route configuration\'s policy is the last to be asked', async () => {
    const p = await proxyWith([withPolicy(route('/', 'backend'), { allow_methods: 'POST' })], {}, [FILTER],
      { typed_per_filter_config: policy({ allow_origin_string_match: [{ exact: APP }], allow_methods: 'GET', max_age: '5' }) });
    const r = await fetchText(`${p.url}/`, { method: 'OPTIONS', headers: preflightHeaders(APP) });
    expect(r.headers['access-control-allow-methods']).toBe('POST');
    expect(r.headers['access-control-max-age']).toBe('5');
  });

  test('the runtime key turns the filter off; shadow mode then counts origins and changes nothing', async () => {
    const p = await proxyWith(routes, vhost);
    p.proxy.runtime.modify('cors.www.enabled', '0');
    const off = await fetchText(`${p.url}/cors/open`, { headers: { origin: 'http://example.com' } });
    expect(off.headers['access-control-allow-origin']).toBe('https://upstream.example');
    expect(await stat(p, 'origin_valid')).toBe(0);

    p.proxy.runtime.modify('cors.www.shadow_enabled', '100');
    const before = upstream.requests.length;
    const shadowPreflight = await fetchText(`${p.url}/cors/open`, { method: 'OPTIONS', headers: preflightHeaders('http://example.com') });
    expect(shadowPreflight.body).toBe('upstream');
    expect(upstream.requests.length).toBe(before + 1);
    expect(shadowPreflight.headers['access-control-allow-methods']).toBeUndefined();
    expect(await stat(p, 'origin_valid')).toBe(1);
  });
});

describe('a real browser', () => {
  const executable = findChromium();
  let page: http.Server;
  let browser: Chromium;
  let origin: string;

  beforeAll(async () => {
    if (executable === null) throw new Error('no Chromium found: run scripts/test-deps.sh (apt-get install -y --no-install-recommends chromium), or set CHROMIUM');
    page = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>app</title>');
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    browser = await Chromium.launch({ executable });
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => page?.close(resolve));
  });

  test('Chromium\'s preflighted PUT succeeds for the allowed origin and is blocked for another', async () => {
    const p = await proxyWith([
      withPolicy(route('/allowed', 'backend'), { allow_origin_string_match: [{ exact: origin }], allow_methods: 'GET, PUT', allow_headers: 'x-custom', expose_headers: 'x-upstream' }),
      withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ exact: 'https://someone.else' }], allow_methods: 'GET, PUT', allow_headers: 'x-custom' }),
    ]);
    const tab = await browser.newPage();
    await tab.goto(`${origin}/`);
    const call = (path: string): Promise<string> => tab.evaluate<string>(`fetch(${JSON.stringify(p.url + path)}, { method: 'PUT', headers: { 'x-custom': '1' }, body: 'hi' })
      .then(async (r) => r.status + ' ' + (await r.text()) + ' ' + r.headers.get('x-upstream'), (e) => 'blocked: ' + e.name)`);
    const before = upstream.requests.length;
    expect(await call('/allowed')).toBe('200 upstream yes');
    // The preflight was answered by the proxy: only the PUT reached the upstream.
    expect(upstream.requests.slice(before).map((r) => r.method)).toEqual(['PUT']);
    expect(await call('/other')).toBe('blocked: TypeError');
    // The disallowed preflight went upstream (forward_not_matching_preflights), and no PUT followed it.
    expect(upstream.requests.slice(before).map((r) => r.method)).toEqual(['PUT', 'OPTIONS']);
  });
});

describe('config errors name their paths', () => {
  const at = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]';

  test('a bad origin matcher and a header value with a line break, all at once', () => {
    const errors = configErrors([withPolicy(route('/', 'backend'), { allow_origin_string_match: [{ safe_regex: { regex: '(a' } }, {}], allow_methods: 'GET\r\nx-injected: 1' })]);
    expect(errors).toEqual([
      expect.stringMatching(new RegExp(`^${escape(`${at}.routes[0].typed_per_filter_config["envoy.filters.http.cors"].allow_origin_string_match[0].safe_regex.regex: `)}`)),
      `${at}.routes[0].typed_per_filter_config["envoy.filters.http.cors"].allow_origin_string_match[1]: one of exact, prefix, suffix, contains or safe_regex is required`,
      `${at}.routes[0].typed_per_filter_config["envoy.filters.http.cors"].allow_methods: must not contain CR, LF or NUL (it is sent as a header value)`,
    ]);
  });

  test('the deprecated cors field of a route or virtual host is refused by name', () => {
    const errors = configErrors([route('/', 'backend', { cors: { allow_methods: 'GET' } })], { cors: { allow_methods: 'GET' } });
    expect(errors).toHaveLength(2);
    for (const e of errors) expect(e).toMatch(/\.cors: .*not supported by sidemirror/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
