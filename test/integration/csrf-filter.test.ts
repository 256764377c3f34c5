import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { Chromium, findChromium } from '../harness/chromium';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// envoy.filters.http.csrf with real sockets: state-changing requests from another origin, or
// from none, refused with 403; Referer when there is no Origin; additional origins; policies per
// route and virtual host with runtime keys and shadow mode (the csrf sandbox's layout); and a
// real Chromium posting same-site and cross-site.

jest.setTimeout(60_000);

type Json = Record<string, unknown>;
const CSRF = 'type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const percent = (n: number, runtimeKey?: string): Json => ({ default_value: { numerator: n, denominator: 'HUNDRED' }, ...(runtimeKey ? { runtime_key: runtimeKey } : {}) });
const filter = (fields: Json = { filter_enabled: percent(100) }): Json => ({ name: 'envoy.filters.http.csrf', typed_config: { '@type': CSRF, ...fields } });
const perFilter = (fields: Json): Json => ({ typed_per_filter_config: { 'envoy.filters.http.csrf': { '@type': CSRF, ...fields } } });

const PAGE = '<!doctype html><title>shop</title>';
let upstream: Upstream;
const running: TestProxy[] = [];

beforeAll(async () => {
  upstream = await startUpstream({
    respond: (req, res) => {
      const html = req.method === 'GET' && req.url === '/page';
      res.writeHead(200, { 'content-type': html ? 'text/html' : 'text/plain' });
      res.end(html ? PAGE : 'upstream');
    },
  });
});
afterAll(async () => {
  await upstream.close();
});
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});

async function proxyWith(filters: Json[], routes: Json[] = [route('/', 'backend')], vhost: Json = {}): Promise<TestProxy> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(routes, vhost), { hcm: { http_filters: [...filters, ROUTER] } })], clusters: [cluster('backend', [upstream.port])] }));
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

const stat = (p: TestProxy, name: string): Promise<number> => statValue(p.adminUrl, `http.ingress_http.csrf.${name}`);
const post = (p: TestProxy, path: string, headers: Record<string, string> = {}, method = 'POST'): ReturnType<typeof fetchText> =>
  fetchText(`${p.url}${path}`, { method: method as 'POST', headers, body: 'x=1' });

describe('the origin check', () => {
  test('a POST from its own host goes through; from another origin it gets 403 "Invalid origin" and never reaches the upstream', async () => {
    const p = await proxyWith([filter()]);
    const own = `http://127.0.0.1:${p.port}`;
    expect((await post(p, '/buy', { origin: own })).body).toBe('upstream');
    const before = upstream.requests.length;
    const foreign = await post(p, '/buy', { origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toBe('Invalid origin');
    expect(upstream.requests.length).toBe(before);
    expect(await stat(p, 'request_valid')).toBe(1);
    expect(await stat(p, 'request_invalid')).toBe(1);
    expect(await stat(p, 'missing_source_origin')).toBe(0);
  });

  test('no Origin and no Referer: 403, counted as missing and invalid', async () => {
    const p = await proxyWith([filter()]);
    const r = await post(p, '/buy');
    expect(r.status).toBe(403);
    expect(await stat(p, 'missing_source_origin')).toBe(1);
    expect(await stat(p, 'request_invalid')).toBe(1);
    expect(await stat(p, 'request_valid')).toBe(0);
  });

  test('the Referer stands in for a missing Origin; only host and port are compared, never the scheme', async () => {
    const p = await proxyWith([filter()]);
    expect((await post(p, '/buy', { referer: `https://127.0.0.1:${p.port}/cart?step=2` })).status).toBe(200);
    expect((await post(p, '/buy', { referer: 'https://evil.example/cart' })).status).toBe(403);
    // As written: a default port spelled out is another host and port, "null" and relative values are no match.
    expect((await post(p, '/buy', { origin: `http://127.0.0.1:${p.port}:80` })).status).toBe(403);
    expect((await post(p, '/buy', { origin: 'null' })).status).toBe(403);
    expect((await post(p, '/buy', { referer: '/cart' })).status).toBe(403);
  });

  test('PUT, DELETE and PATCH are checked; GET, HEAD and OPTIONS are not', async () => {
    const p = await proxyWith([filter()]);
    const foreign = { origin: 'https://evil.example' };
    for (const m of ['PUT', 'DELETE', 'PATCH']) expect((await post(p, '/x', foreign, m)).status).toBe(403);
    for (const m of ['GET', 'HEAD', 'OPTIONS']) expect((await fetchText(`${p.url}/x`, { method: m as 'GET', headers: foreign })).status).toBe(200);
    expect(await stat(p, 'request_invalid')).toBe(3);
  });

  test('additional_origins allow other sites by matcher', async () => {
    const p = await proxyWith([filter({ filter_enabled: percent(100), additional_origins: [{ suffix: '.partner.example' }, { exact: 'app.example:8443' }] })]);
    expect((await post(p, '/', { origin: 'https://shop.partner.example' })).status).toBe(200);
    expect((await post(p, '/', { origin: 'https://app.example:8443' })).status).toBe(200);
    expect((await post(p, '/', { origin: 'https://partner.example.evil' })).status).toBe(403);
  });
});

test('a request an earlier filter answered is not judged or counted', async () => {
  const fault = { name: 'envoy.filters.http.fault', typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault', abort: { http_status: 418, percentage: { numerator: 100 } },
  } };
  const p = await proxyWith([fault, filter()]);
  expect((await post(p, '/buy', { origin: 'https://evil.example' })).status).toBe(418);
  expect(await stat(p, 'request_invalid')).toBe(0);
});

describe('policies per route and virtual host (the csrf sandbox\'s layout)', () => {
  const vhost = perFilter({ filter_enabled: percent(100, 'csrf.www.enabled'), shadow_enabled: percent(0, 'csrf.www.shadow_enabled') });
  const routes = [
    { ...route('/csrf/disabled', 'backend'), ...perFilter({ filter_enabled: percent(0) }) },
    { ...route('/csrf/shadow', 'backend'), ...perFilter({ filter_enabled: percent(0), shadow_enabled: percent(100) }) },
    { ...route('/csrf/additional_origin', 'backend'), ...perFilter({ filter_enabled: percent(100), additional_origins: [{ safe_regex: { regex: '.*' } }] }) },
    route('/', 'backend'),
  ];
  const foreign = { origin: 'https://example.com' };

  test('the filter off in http_filters and on for the virtual host; disabled, shadow and additional-origin routes', async () => {
    const p = await proxyWith([filter({ filter_enabled: percent(0) })], routes, vhost);
    expect((await post(p, '/csrf/enabled', foreign)).status).toBe(403);
    expect((await post(p, '/csrf/disabled', foreign)).status).toBe(200);
    expect((await post(p, '/csrf/additional_origin', foreign)).status).toBe(200);
    const shadowed = await post(p, '/csrf/shadow', foreign);
    expect(shadowed.status).toBe(200);
    // The shadowed request was judged and counted, with the refused one.
    expect(await stat(p, 'request_invalid')).toBe(2);
    expect(await stat(p, 'request_valid')).toBe(1);
  });

  test('the virtual host\'s runtime keys turn enforcement off, then shadow mode on', async () => {
    const p = await proxyWith([filter({ filter_enabled: percent(0) })], routes, vhost);
    p.proxy.runtime.modify('csrf.www.enabled', '0');
    expect((await post(p, '/x', foreign)).status).toBe(200);
    expect(await stat(p, 'request_invalid')).toBe(0);
    p.proxy.runtime.modify('csrf.www.shadow_enabled', '100');
    expect((await post(p, '/x', foreign)).status).toBe(200);
    expect(await stat(p, 'request_invalid')).toBe(1);
  });
});

describe('a real browser', () => {
  const executable = findChromium();
  let site: http.Server;
  let browser: Chromium;
  let siteOrigin: string;

  beforeAll(async () => {
    if (executable === null) throw new Error('no Chromium found: run scripts/test-deps.sh (apt-get install -y --no-install-recommends chromium), or set CHROMIUM');
    site = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>elsewhere</title>');
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteOrigin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    browser = await Chromium.launch({ executable });
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => site?.close(resolve));
  });

  test('Chromium\'s POST from the proxied page goes through; the same POST from another site is refused', async () => {
    const p = await proxyWith([filter()]);
    const tab = await browser.newPage();
    const send = `fetch(${JSON.stringify(`${p.url}/buy`)}, { method: 'POST', mode: 'no-cors', body: 'x=1' }).then(() => 'sent', (e) => 'error: ' + e.name)`;

    await tab.goto(`${p.url}/page`);
    // The browser may ask the proxied site for its favicon meanwhile: only POSTs count here.
    const posts = (): string[] => upstream.requests.filter((r) => r.method === 'POST').map((r) => `${r.url} ${r.headers.origin}`);
    const before = posts().length;
    expect(await tab.evaluate(send)).toBe('sent');
    expect(posts().slice(before)).toEqual([`/buy http://127.0.0.1:${p.port}`]);

    await tab.goto(`${siteOrigin}/`);
    expect(await tab.evaluate(send)).toBe('sent');
    expect(posts().length).toBe(before + 1);
    expect(await stat(p, 'request_invalid')).toBe(1);
    expect(await stat(p, 'request_valid')).toBe(1);
  });
});

describe('config errors name their paths', () => {
  const base = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';

  test('filter_enabled is required, in http_filters and per route; bad matchers; all at once', () => {
    const errors = configErrors([filter({ additional_origins: [{}] })], [{ ...route('/', 'backend'), ...perFilter({ shadow_enabled: percent(1) }) }]);
    expect(errors).toEqual([
      `${base}.route_config.virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.csrf"].filter_enabled: filter_enabled is required`,
      `${base}.http_filters[0].typed_config.filter_enabled: filter_enabled is required`,
      `${base}.http_filters[0].typed_config.additional_origins[0]: one of exact, prefix, suffix, contains or safe_regex is required`,
    ]);
  });
});
