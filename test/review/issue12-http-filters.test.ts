import * as http from 'node:http';
import * as net from 'node:net';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { compressor, gzipLib } from '../harness/compress-upstream';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Issue 12 review, hostile inputs against the HTTP filters: paths that normalize to a denied
// one, responses the compressor must leave alone, a client that leaves during a fault delay.

jest.setTimeout(30_000);

type Json = Record<string, unknown>;
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

let upstream: Upstream;
const running: TestProxy[] = [];

beforeAll(async () => {
  upstream = await startUpstream({
    respond: (req, res) => {
      const u = new URL(req.url, 'http://x');
      const status = Number(u.searchParams.get('status') ?? 200);
      const body = 'word '.repeat(2000);
      if (status === 204 || status === 304) {
        res.writeHead(status, { 'content-type': 'text/plain', etag: '"abc"' });
        res.end();
        return;
      }
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
  });
});

afterAll(async () => {
  for (const p of running.splice(0)) await p.stop();
  await upstream?.close();
});

async function proxyWith(filters: Json[], hcm: Json = {}): Promise<TestProxy> {
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig([route('/', 'backend')]), { hcm: { http_filters: [...filters, ROUTER], ...hcm } })],
    clusters: [cluster('backend', [upstream.port])],
  }));
  running.push(p);
  return p;
}

/** One raw HTTP/1.1 request (the path exactly as written); resolves the status line's code. */
function rawStatus(port: number, requestPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`GET ${requestPath} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`));
    let got = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error('no answer')); }, 10_000);
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(t);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      m ? resolve(Number(m[1])) : reject(new Error(`no status in ${JSON.stringify(got.slice(0, 80))}`));
    });
    s.on('error', () => undefined);
  });
}

describe('rbac: a DENY on url_path prefix /admin', () => {
  const deny = { name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC, rules: { action: 'DENY', policies: {
    admin: { permissions: [{ url_path: { path: { prefix: '/admin' } } }], principals: [{ any: true }] },
  } } } };

  test('with normalize_path and merge_slashes, every spelling that reaches /admin upstream is denied', async () => {
    const p = await proxyWith([deny], { normalize_path: true, merge_slashes: true });
    const before = upstream.requests.length;
    for (const spelling of ['/admin', '//admin', '/./admin', '/x/../admin', '/%61dmin', '/admin?x=1', '///admin/../admin/users']) {
      expect([spelling, await rawStatus(p.port, spelling)]).toEqual([spelling, 403]);
    }
    // Nothing reached the upstream's /admin.
    expect(upstream.requests.slice(before).filter((r) => r.url.startsWith('/admin'))).toEqual([]);
    expect(await rawStatus(p.port, '/public')).toBe(200);
  });

  test('the query string is not part of url_path: /public?/admin is allowed, /admin?x is denied', async () => {
    const p = await proxyWith([deny]);
    expect(await rawStatus(p.port, '/public?/admin')).toBe(200);
    expect(await rawStatus(p.port, '/admin?x')).toBe(403);
  });
});

describe('compressor: responses without a body are left alone', () => {
  test('HEAD keeps its content-length and gets no content-encoding', async () => {
    const p = await proxyWith([compressor(gzipLib())]);
    const r = await fetchText(`${p.url}/text`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers['content-length']).toBe(String(Buffer.byteLength('word '.repeat(2000))));
    const g = await fetchText(`${p.url}/text`, { headers: { 'accept-encoding': 'gzip' } });
    expect(g.headers['content-encoding']).toBe('gzip');
  });

  test('204 and 304 get no content-encoding and no body; the strong ETag of a 304 stays', async () => {
    const p = await proxyWith([compressor(gzipLib())]);
    for (const status of [204, 304]) {
      const r = await fetchText(`${p.url}/x?status=${status}`, { headers: { 'accept-encoding': 'gzip' } });
      expect(r.status).toBe(status);
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(r.body).toBe('');
      if (status === 304) expect(r.headers.etag).toBe('"abc"');
    }
  });
});

describe('fault: a header-controlled delay from the client', () => {
  test('a client that leaves mid-delay: nothing goes upstream, the active fault is released', async () => {
    const p = await proxyWith([{ name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT, delay: { header_delay: {}, percentage: { numerator: 100 } } } }]);
    const before = upstream.requests.length;
    const clients: http.ClientRequest[] = [];
    for (let i = 0; i < 20; i++) {
      const r = http.get({ host: '127.0.0.1', port: p.port, path: `/left${i}`, headers: { 'x-envoy-fault-delay-request': '3000' } });
      r.on('error', () => undefined);
      clients.push(r);
    }
    for (let i = 0; i < 50 && (await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')) < 20; i++) await sleep(100);
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')).toBe(20);
    for (const c of clients) c.destroy();
    for (let i = 0; i < 50 && (await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')) > 0; i++) await sleep(100);
    expect(await statValue(p.adminUrl, 'http.ingress_http.fault.active_faults')).toBe(0);
    // Past the delay: the abandoned requests were not sent on.
    await sleep(3500);
    expect(upstream.requests.slice(before).filter((r) => r.url.startsWith('/left'))).toEqual([]);
  });
});
