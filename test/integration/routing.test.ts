import * as http from 'node:http';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type RecordedRequest, type Upstream, startUpstream } from '../harness/upstream';

// Routing end to end: virtual host selection, route matching, route actions, load balancing and
// the connection manager's header rules. Real sockets on 127.0.0.1; servers stopped by handle.

type Json = Record<string, unknown>;

/** An upstream that answers with its name and what it received, as JSON. */
const echo = (name: string): Promise<Upstream> => startUpstream({
  respond: (req: RecordedRequest, res) => {
    const body = JSON.stringify({ name, url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  },
});

interface Echoed { name: string; url: string; headers: http.IncomingHttpHeaders }

async function get(p: TestProxy, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown>; echo?: Echoed }> {
  const r = await fetchText(`${p.url}${path}`, { headers });
  return { ...r, echo: r.headers['content-type'] === 'application/json' ? (JSON.parse(r.body) as Echoed) : undefined };
}

/** Starts `n` echo upstreams named u0…, a proxy built from their ports, runs `body`, stops all. */
async function withProxy(n: number, build: (ports: number[]) => { listeners: Json[]; clusters: Json[] },
  body: (p: TestProxy, ups: Upstream[]) => Promise<void>): Promise<void> {
  const ups: Upstream[] = [];
  try {
    for (let i = 0; i < n; i++) ups.push(await echo(`u${i}`));
    const p = await startProxy(bootstrap(build(ups.map((u) => u.port))));
    try {
      await body(p, ups);
    } finally {
      await p.stop();
    }
  } finally {
    for (const u of ups) await u.close();
  }
}

const direct = (prefix: string, body: string, status = 200): Json => ({ match: { prefix }, direct_response: { status, body: { inline_string: body } } });
const vhost = (name: string, domains: string[], routes: Json[], extra: Json = {}): Json => ({ name, domains, routes, ...extra });

describe('virtual hosts and route matching', () => {
  let ups: Upstream[] = [];
  let p: TestProxy;

  beforeAll(async () => {
    ups = [await echo('main'), await echo('other')];
    const [main, other] = ups.map((u) => u.port);
    const rc = {
      name: 'local_route',
      virtual_hosts: [
        vhost('exact', ['a.com'], [direct('/', 'exact')]),
        vhost('exact-port', ['a.com:80'], [direct('/', 'exact-port')]),
        vhost('exact-over-suffix', ['x.b.com'], [direct('/', 'exact-over-suffix')]),
        vhost('suffix', ['*.b.com'], [direct('/', 'suffix')]),
        vhost('suffix-long', ['*.long.b.com'], [direct('/', 'suffix-long')]),
        vhost('prefix', ['c.*'], [direct('/', 'prefix')]),
        vhost('all', ['*'], [
          direct('/which', 'catch-all'),
          { match: { path: '/exact' }, direct_response: { status: 200, body: { inline_string: 'path' } } },
          { match: { safe_regex: { regex: '/re/[0-9]+' } }, direct_response: { status: 200, body: { inline_string: 'regex' } } },
          { match: { prefix: '/hdr', headers: [{ name: 'x-exact', string_match: { exact: 'yes' } }] }, direct_response: { status: 200, body: { inline_string: 'hdr-exact' } } },
          { match: { prefix: '/hdr', headers: [{ name: 'x-present', present_match: true }] }, direct_response: { status: 200, body: { inline_string: 'hdr-present' } } },
          { match: { prefix: '/hdr', headers: [{ name: 'x-block', string_match: { exact: 'no' }, invert_match: true }] }, direct_response: { status: 200, body: { inline_string: 'hdr-invert' } } },
          { match: { prefix: '/q', query_parameters: [{ name: 'v', string_match: { exact: '2' } }] }, direct_response: { status: 200, body: { inline_string: 'query-exact' } } },
          { match: { prefix: '/q', query_parameters: [{ name: 'flag', present_match: true }] }, direct_response: { status: 200, body: { inline_string: 'query-present' } } },
          route('/old/', 'main', { prefix_rewrite: '/new/' }),
          { match: { safe_regex: { regex: '/rx/([0-9]+)/item' } }, route: { cluster: 'main', regex_rewrite: { pattern: { regex: '^/rx/([0-9]+)/item$' }, substitution: '/items/\\1' } } },
          route('/hostrw', 'main', { host_rewrite_literal: 'rewritten.example' }),
          route('/by-header', '', { cluster: undefined, cluster_header: 'x-cluster' }),
          { match: { prefix: '/teapot' }, direct_response: { status: 418, body: { inline_string: 'short and stout' } } },
          { match: { prefix: '/moved' }, redirect: { path_redirect: '/new-home' } },
          { ...route('/edits', 'main'), request_headers_to_add: [{ header: { key: 'x-route-added', value: 'r1' } }] },
          route('/', 'main'),
        ], { response_headers_to_add: [{ header: { key: 'x-vhost-added', value: 'v1' } }] }),
      ],
    };
    p = await startProxy(bootstrap({ listeners: [listener(rc)], clusters: [cluster('main', [main!]), cluster('other', [other!])] }));
  });

  afterAll(async () => {
    await p?.stop();
    for (const u of ups) await u.close();
  });

  const body = async (path: string, headers: Record<string, string> = {}): Promise<string> => (await get(p, path, headers)).body;

  test('domains: exact > *.suffix (longest first) > prefix.* > *, case-insensitive, port included', async () => {
    expect(await body('/which', { host: 'a.com' })).toBe('exact');
    expect(await body('/which', { host: 'A.COM' })).toBe('exact');
    expect(await body('/which', { host: 'a.com:80' })).toBe('exact-port');
    expect(await body('/which', { host: 'a.com:8080' })).toBe('catch-all');
    expect(await body('/which', { host: 'x.b.com' })).toBe('exact-over-suffix');
    expect(await body('/which', { host: 'y.b.com' })).toBe('suffix');
    expect(await body('/which', { host: 'z.long.b.com' })).toBe('suffix-long');
    expect(await body('/which', { host: 'c.b.com' })).toBe('suffix'); // suffix beats prefix
    expect(await body('/which', { host: 'c.org' })).toBe('prefix');
    expect(await body('/which', { host: 'b.com' })).toBe('catch-all'); // a wildcard stands for at least one character
    expect(await body('/which', { host: 'elsewhere' })).toBe('catch-all');
  });

  test('path: exact, ignoring the query', async () => {
    expect(await body('/exact')).toBe('path');
    expect(await body('/exact?x=1')).toBe('path');
    expect((await get(p, '/exact/more')).echo?.url).toBe('/exact/more'); // falls through to the prefix "/" route
  });

  test('safe_regex: a full match of the path', async () => {
    expect(await body('/re/123')).toBe('regex');
    expect(await body('/re/123?q=a')).toBe('regex');
    expect((await get(p, '/re/123x')).echo?.name).toBe('main');
    expect((await get(p, '/x/re/1')).echo?.name).toBe('main');
  });

  test('headers: exact string_match, present_match, invert_match', async () => {
    expect(await body('/hdr', { 'x-exact': 'yes' })).toBe('hdr-exact');
    expect(await body('/hdr', { 'x-exact': 'no', 'x-present': '' })).toBe('hdr-present');
    expect(await body('/hdr', { 'x-block': 'maybe' })).toBe('hdr-invert');
    expect((await get(p, '/hdr', { 'x-block': 'no' })).echo?.name).toBe('main');
    // Envoy: a missing header fails an inverted value match (treat_missing_header_as_empty aside).
    expect((await get(p, '/hdr')).echo?.name).toBe('main');
  });

  test('query_parameters: string_match and present_match', async () => {
    expect(await body('/q?v=2')).toBe('query-exact');
    expect(await body('/q?a=1&v=2')).toBe('query-exact');
    expect(await body('/q?flag')).toBe('query-present');
    expect(await body('/q?v=3&flag=x')).toBe('query-present');
    expect((await get(p, '/q?v=3')).echo?.url).toBe('/q?v=3');
  });

  test('prefix_rewrite and regex_rewrite keep the query', async () => {
    expect((await get(p, '/old/a/b?x=1')).echo?.url).toBe('/new/a/b?x=1');
    expect((await get(p, '/rx/42/item?y=2')).echo?.url).toBe('/items/42?y=2');
  });

  test('host_rewrite_literal', async () => {
    const r = await get(p, '/hostrw', { host: 'client.example' });
    expect(r.echo?.headers.host).toBe('rewritten.example');
  });

  test('cluster_header picks the cluster; a missing or unknown one is a 503', async () => {
    expect((await get(p, '/by-header', { 'x-cluster': 'other' })).echo?.name).toBe('other');
    expect((await get(p, '/by-header', { 'x-cluster': 'main' })).echo?.name).toBe('main');
    expect((await get(p, '/by-header', { 'x-cluster': 'nope' })).status).toBe(503);
    expect((await get(p, '/by-header')).status).toBe(503);
  });

  test('direct_response and redirect', async () => {
    const t = await get(p, '/teapot');
    expect(t.status).toBe(418);
    expect(t.body).toBe('short and stout');
    expect(t.headers['x-vhost-added']).toBe('v1');
    const r = await get(p, '/moved?k=v', { host: 'site.example:8080' });
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('http://site.example:8080/new-home?k=v');
  });

  test('request_headers_to_add on the route, response_headers_to_add on the virtual host', async () => {
    const r = await get(p, '/edits');
    expect(r.echo?.headers['x-route-added']).toBe('r1');
    expect(r.headers['x-vhost-added']).toBe('v1');
    expect((await get(p, '/plain')).echo?.headers['x-route-added']).toBeUndefined();
  });

  test('connection manager headers: x-request-id, x-forwarded-proto, expected timeout', async () => {
    const a = (await get(p, '/plain')).echo!.headers;
    expect(a['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(a['x-forwarded-proto']).toBe('http');
    expect(a['x-envoy-expected-rq-timeout-ms']).toBe('15000');
    const b = (await get(p, '/plain', { 'x-request-id': 'keep-me' })).echo!.headers;
    expect(b['x-request-id']).toBe('keep-me');
  });

  test('hop-by-hop headers are not forwarded; te: trailers is', async () => {
    const send = (headers: http.OutgoingHttpHeaders): Promise<Echoed> => new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: p.port, path: '/plain', headers, agent: false }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (data += d));
        res.on('end', () => resolve(JSON.parse(data) as Echoed));
      });
      req.setTimeout(5000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
    const h = (await send({ connection: 'x-foo', 'x-foo': '1', 'keep-alive': 'timeout=5', te: 'gzip', 'x-bar': '2' })).headers;
    expect(h['x-foo']).toBeUndefined();
    expect(h['keep-alive']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['x-bar']).toBe('2');
    expect((await send({ te: 'trailers' })).headers.te).toBe('trailers');
  });
});

describe('route actions across clusters', () => {
  const weighted = (w0: number, w1: number): ((ports: number[]) => { listeners: Json[]; clusters: Json[] }) => (ports) => ({
    listeners: [listener(routeConfig([{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'c0', weight: w0 }, { name: 'c1', weight: w1 }] } } }]))],
    clusters: [cluster('c0', [ports[0]!]), cluster('c1', [ports[1]!])],
  });

  test('weighted_clusters 50/50: both receive some of 120 requests', async () => {
    await withProxy(2, weighted(50, 50), async (p, ups) => {
      for (let i = 0; i < 120; i++) expect((await get(p, `/w${i}`)).status).toBe(200);
      expect(ups[0]!.requests.length + ups[1]!.requests.length).toBe(120);
      expect(ups[0]!.requests.length).toBeGreaterThan(20);
      expect(ups[1]!.requests.length).toBeGreaterThan(20);
    });
  });

  test('weighted_clusters 100/0: only the first receives', async () => {
    await withProxy(2, weighted(100, 0), async (p, ups) => {
      for (let i = 0; i < 60; i++) expect((await get(p, `/w${i}`)).status).toBe(200);
      expect(ups[0]!.requests).toHaveLength(60);
      expect(ups[1]!.requests).toHaveLength(0);
    });
  });
});

describe('load balancing', () => {
  const threeEndpoints = (lbPolicy: string) => (ports: number[]) => ({
    listeners: [listener(routeConfig([route('/', 'lb')]))],
    clusters: [cluster('lb', ports, { lb_policy: lbPolicy })],
  });

  test('ROUND_ROBIN over 3 endpoints: 30 requests give 10 each', async () => {
    await withProxy(3, threeEndpoints('ROUND_ROBIN'), async (p, ups) => {
      for (let i = 0; i < 30; i++) expect((await get(p, '/')).status).toBe(200);
      expect(ups.map((u) => u.requests.length)).toEqual([10, 10, 10]);
    });
  });

  test.each(['RANDOM', 'LEAST_REQUEST'])('%s over 3 endpoints: each receives some of 60 requests', async (policy) => {
    await withProxy(3, threeEndpoints(policy), async (p, ups) => {
      for (let i = 0; i < 60; i++) expect((await get(p, '/')).status).toBe(200);
      const counts = ups.map((u) => u.requests.length);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(60);
      for (const c of counts) expect(c).toBeGreaterThan(0);
    });
  });

  test('STRICT_DNS with a localhost endpoint and dns_lookup_family: V4_ONLY', async () => {
    await withProxy(1, (ports) => ({
      listeners: [listener(routeConfig([route('/', 'dns')]))],
      clusters: [{
        name: 'dns', type: 'STRICT_DNS', dns_lookup_family: 'V4_ONLY', connect_timeout: '1s',
        load_assignment: { cluster_name: 'dns', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'localhost', port_value: ports[0] } } } }] }] },
      }],
    }), async (p, ups) => {
      const r = await get(p, '/dns');
      expect(r.status).toBe(200);
      expect(r.echo?.name).toBe('u0');
      expect(ups[0]!.requests).toHaveLength(1);
    });
  });
});

describe('streaming', () => {
  test('a chunked request body and a chunked response stream through intact', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    const parts = Array.from({ length: 8 }, (_v, i) => `part-${i}-${'x'.repeat(4000)}\n`);
    const up = await startUpstream({
      respond: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' }); // no content-length: chunked
        res.write(parts[0]);
        void released.then(() => {
          for (const part of parts.slice(1)) res.write(part);
          res.end();
        });
      },
    });
    const p = await startProxy(bootstrap({ listeners: [listener(routeConfig([route('/', 'up')]))], clusters: [cluster('up', [up.port])] }));
    try {
      const upload = Array.from({ length: 16 }, (_v, i) => Buffer.alloc(8192, 97 + i));
      const res = await request(`${p.url}/stream`, { method: 'POST', body: Readable.from(upload) });
      expect(res.statusCode).toBe(200);
      expect(res.headers['transfer-encoding']).toBe('chunked');
      const received: Buffer[] = [];
      let firstBeforeRelease = false;
      for await (const chunk of res.body) {
        if (received.length === 0) {
          // The first part reached the client while the upstream still held back the rest.
          firstBeforeRelease = true;
          release();
        }
        received.push(chunk as Buffer);
      }
      expect(firstBeforeRelease).toBe(true);
      expect(Buffer.concat(received).toString()).toBe(parts.join(''));
      const [rec] = await up.waitForRequests(1);
      expect(rec!.headers['transfer-encoding']).toBe('chunked');
      expect(rec!.body.equals(Buffer.concat(upload))).toBe(true);
    } finally {
      release();
      await p.stop();
      await up.close();
    }
  });
});
