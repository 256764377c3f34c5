// Downstream request validation with real sockets on 127.0.0.1: malformed requests sent as raw
// bytes get Envoy's 4xx, are counted, never reach the upstream or a mirror, and the proxy keeps
// serving; absolute-form targets are routed by their authority and forwarded in origin-form;
// HTTP/1.0 needs accept_http_10; normalize_path, merge_slashes and each escaped-slashes action act
// before routing.
import * as net from 'node:net';
import { bootstrap, cluster, listener, route } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

type Json = Record<string, unknown>;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

async function upstream(name: string): Promise<Upstream> {
  const u = await startUpstream({ name });
  cleanups.push(() => u.close());
  return u;
}

async function proxy(text: string): Promise<TestProxy> {
  const p = await startProxy(text);
  cleanups.push(() => p.stop());
  return p;
}

/** Writes raw bytes, returns everything the proxy sent until it closed the connection (bounded). */
function rawExchange(port: number, bytes: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from(bytes, 'latin1')));
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(got)}`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

const statusOf = (response: string): number => Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);

/** Two virtual hosts: `x` goes to its own cluster; everything else to primary, mirrored. */
function twoHosts(ports: { x: number; primary: number; mirror: number }, hcm: Json = {}): string {
  const rc = {
    name: 'local_route',
    virtual_hosts: [
      { name: 'x', domains: ['x', 'x:*'], routes: [route('/', 'xc')] },
      { name: 'backend', domains: ['*'], routes: [route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })] },
    ],
  };
  return bootstrap({
    listeners: [listener(rc, { hcm })],
    clusters: [cluster('xc', [ports.x]), cluster('primary', [ports.primary]), cluster('mirror', [ports.mirror])],
  });
}

async function threeUpstreams(): Promise<{ x: Upstream; primary: Upstream; mirror: Upstream }> {
  return { x: await upstream('x'), primary: await upstream('primary'), mirror: await upstream('mirror') };
}

const S = 'http.ingress_http';

test('malformed requests get 4xx local replies, are counted, reach neither upstream nor mirror, and the proxy keeps serving', async () => {
  const u = await threeUpstreams();
  const p = await proxy(twoHosts({ x: u.x.port, primary: u.primary.port, mirror: u.mirror.port }));
  // [what, raw request, status, a codec (protocol) error?]
  const cases: Array<[string, string, number, boolean]> = [
    ['Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400, true],
    ['Host with a path and userinfo', 'GET / HTTP/1.1\r\nHost: evil.com/x?@a\r\n\r\n', 400, true],
    ['unclosed IPv6 literal', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', 400, true],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, true],
    ['Host port out of range', 'GET / HTTP/1.1\r\nHost: a:70000\r\n\r\n', 400, true],
    ['no HTTP version (HTTP/0.9)', 'GET /\r\n\r\n', 426, true],
    ['no HTTP version, with a Host', 'GET /\r\nHost: a\r\n\r\n', 426, true],
    ['HTTP/1.0 without Host', 'GET / HTTP/1.0\r\n\r\n', 426, true],
    ['HTTP/1.0 with Host', 'GET / HTTP/1.0\r\nHost: a\r\n\r\n', 426, true],
    ['absolute-form with an invalid port', 'GET http://a:99999/ HTTP/1.1\r\nHost: a\r\n\r\n', 400, true],
    ['asterisk target on GET', 'GET * HTTP/1.1\r\nHost: a\r\n\r\n', 400, true],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n', 400, false],
    ['a fragment in the path', 'GET /a#b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 400, false],
    ['OPTIONS * (not a relative path)', 'OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 404, false],
  ];
  const before4xx = await statValue(p.adminUrl, `${S}.downstream_rq_4xx`);
  const beforeProto = await statValue(p.adminUrl, `${S}.downstream_cx_protocol_error`);
  for (const [what, raw, status] of cases) {
    const response = await rawExchange(p.port, raw);
    expect({ what, status: statusOf(response) }).toEqual({ what, status });
  }
  expect(await statValue(p.adminUrl, `${S}.downstream_rq_4xx`)).toBe(before4xx + cases.length);
  expect(await statValue(p.adminUrl, `${S}.downstream_cx_protocol_error`)).toBe(beforeProto + cases.filter((c) => c[3]).length);
  expect(await statValue(p.adminUrl, `${S}.downstream_rq_non_relative_path`)).toBe(1);
  expect(await statValue(p.adminUrl, `${S}.downstream_rq_failed_path_normalization`)).toBe(1);

  // The proxy is alive and serves a good request; its shadow is the only one the mirror ever saw.
  const good = await fetchText(`${p.url}/good`);
  expect(good.status).toBe(200);
  await u.mirror.waitForRequests(1, 5000);
  expect(u.primary.requests.map((r) => r.url)).toEqual(['/good']);
  expect(u.mirror.requests.map((r) => r.url)).toEqual(['/good']);
  expect(u.x.requests).toHaveLength(0);
});

test('an absolute-form target is routed by its authority; the upstream gets origin-form and that authority as Host', async () => {
  const u = await threeUpstreams();
  const p = await proxy(twoHosts({ x: u.x.port, primary: u.primary.port, mirror: u.mirror.port }));
  const response = await rawExchange(p.port, 'GET http://x/secret?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n');
  expect(statusOf(response)).toBe(200);
  expect(u.x.requests.map((r) => [r.url, r.headers.host])).toEqual([['/secret?q=1', 'x']]);
  expect(u.primary.requests).toHaveLength(0);

  // Without allow_absolute_url it is a non-relative path: 404, nothing forwarded.
  const strict = await proxy(twoHosts({ x: u.x.port, primary: u.primary.port, mirror: u.mirror.port }, { http_protocol_options: { allow_absolute_url: false } }));
  expect(statusOf(await rawExchange(strict.port, 'GET http://x/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))).toBe(404);
  expect(u.x.requests).toHaveLength(1);
  expect(await statValue(strict.adminUrl, `${S}.downstream_rq_non_relative_path`)).toBe(1);
});

test('HTTP/1.0: 426 by default; with accept_http_10 and default_host_for_http_10 it is served and routed by the default host', async () => {
  const u = await threeUpstreams();
  const ports = { x: u.x.port, primary: u.primary.port, mirror: u.mirror.port };
  const plain = await proxy(twoHosts(ports));
  const refused = await rawExchange(plain.port, 'GET /old HTTP/1.0\r\n\r\n');
  expect(statusOf(refused)).toBe(426);
  expect(refused).toContain('Upgrade Required');

  const tolerant = await proxy(twoHosts(ports, { http_protocol_options: { accept_http_10: true, default_host_for_http_10: 'x' } }));
  const served = await rawExchange(tolerant.port, 'GET /old HTTP/1.0\r\n\r\n');
  expect(statusOf(served)).toBe(200);
  expect(u.x.requests.map((r) => [r.url, r.headers.host])).toEqual([['/old', 'x']]);
  // A Host the client sent wins over the default.
  expect(statusOf(await rawExchange(tolerant.port, 'GET /given HTTP/1.0\r\nHost: elsewhere\r\n\r\n'))).toBe(200);
  expect(u.primary.requests.map((r) => [r.url, r.headers.host])).toEqual([['/given', 'elsewhere']]);
  // Its shadow carries the same path; the refused request never produced one.
  await u.mirror.waitForRequests(1, 5000);
  expect(u.mirror.requests.map((r) => r.url)).toEqual(['/given']);
});

test('normalize_path and merge_slashes act before routing and on the upstream path', async () => {
  const up = await upstream('app');
  const rc = {
    name: 'local_route',
    virtual_hosts: [{
      name: 'all',
      domains: ['*'],
      routes: [
        { match: { prefix: '/admin' }, direct_response: { status: 403, body: { inline_string: 'admin is closed' } } },
        route('/', 'app'),
      ],
    }],
  };
  const p = await proxy(bootstrap({ listeners: [listener(rc, { hcm: { normalize_path: true, merge_slashes: true } })], clusters: [cluster('app', [up.port])] }));
  const cases: Array<[string, number, string | null]> = [
    ['/a//b/../../admin/%2e%2e/x', 200, '/a/x'],
    ['/public/../admin/secret', 403, null],
    ['/public/%2e%2e/admin', 403, null],
    ['//admin//x', 403, null],
    ['/a/./b//c?q=/../x', 200, '/a/b/c?q=/../x'],
    ['/%61%62c', 200, '/abc'],
  ];
  for (const [path, status, upstreamPath] of cases) {
    const before = up.requests.length;
    const r = await rawExchange(p.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    expect({ path, status: statusOf(r) }).toEqual({ path, status });
    expect({ path, forwarded: up.requests.slice(before).map((q) => q.url) }).toEqual({ path, forwarded: upstreamPath === null ? [] : [upstreamPath] });
  }
  // A path that cannot be normalized is a 400, counted.
  expect(statusOf(await rawExchange(p.port, 'GET /a/%00 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'))).toBe(400);
  expect(await statValue(p.adminUrl, `${S}.downstream_rq_failed_path_normalization`)).toBe(1);

  // Without the options the same path goes upstream byte for byte.
  const raw = await proxy(bootstrap({ listeners: [listener(rc)], clusters: [cluster('app', [up.port])] }));
  const before = up.requests.length;
  expect(statusOf(await rawExchange(raw.port, 'GET /a//b/../../admin/%2e%2e/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'))).toBe(200);
  expect(up.requests.slice(before).map((q) => q.url)).toEqual(['/a//b/../../admin/%2e%2e/x']);
});

test('path_with_escaped_slashes_action: keep, reject (400), redirect (307 to the unescaped path), forward unescaped', async () => {
  const up = await upstream('app');
  const actions = ['KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD'];
  const rc = { name: 'local_route', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [route('/', 'app')] }] };
  const proxies = new Map<string, TestProxy>();
  for (const a of actions) {
    proxies.set(a, await proxy(bootstrap({
      listeners: [listener(rc, { hcm: { path_with_escaped_slashes_action: a, merge_slashes: true } })],
      clusters: [cluster('app', [up.port])],
    })));
  }
  const send = (action: string, path: string): Promise<string> =>
    rawExchange(proxies.get(action)!.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);

  let r = await send('KEEP_UNCHANGED', '/a%2Fb');
  expect(statusOf(r)).toBe(200);
  expect(up.requests.at(-1)!.url).toBe('/a%2Fb');

  const count = up.requests.length;
  r = await send('REJECT_REQUEST', '/a%2Fb');
  expect(statusOf(r)).toBe(400);
  expect(up.requests).toHaveLength(count);
  expect(await statValue(proxies.get('REJECT_REQUEST')!.adminUrl, `${S}.downstream_rq_failed_path_normalization`)).toBe(1);
  expect(statusOf(await send('REJECT_REQUEST', '/a/b'))).toBe(200);

  r = await send('UNESCAPE_AND_REDIRECT', '/a%2F%2Fb%5Cc?x=%2F');
  expect(statusOf(r)).toBe(307);
  expect(r).toMatch(/\r\nlocation: \/a\/b\\c\?x=%2F\r\n/i);
  expect(await statValue(proxies.get('UNESCAPE_AND_REDIRECT')!.adminUrl, `${S}.downstream_rq_redirected_with_normalized_path`)).toBe(1);
  expect(up.requests).toHaveLength(count + 1);

  r = await send('UNESCAPE_AND_FORWARD', '/a%2f%2Fb');
  expect(statusOf(r)).toBe(200);
  expect(up.requests.at(-1)!.url).toBe('/a/b');
});
