import type * as http from 'node:http';
import * as zlib from 'node:zlib';
import { request } from 'undici';
import type { CompareReport, SamplesReport } from '../../src/compare/report-types';
import { cluster } from '../harness/bootstrap';
import { type Json, extBootstrap, extRoute } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type RecordedRequest, type Upstream, startUpstream } from '../harness/upstream';

// Comparison with real upstreams at its edges: encodings, sizes, methods, failures, redaction,
// the store's bound and the metrics. Each test runs a proxy whose route goes to `primary` and
// whose policy `cand` mirrors to `candidate` (and `reference` when given), comparing.

jest.setTimeout(60_000);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

type Respond = (req: RecordedRequest, res: http.ServerResponse) => void;

async function upstream(respond: Respond): Promise<Upstream> {
  const u = await startUpstream({ respond });
  cleanups.push(() => u.close());
  return u;
}

const jsonReply = (body: unknown, headers: http.OutgoingHttpHeaders = {}): Respond => (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

interface Rig {
  readonly proxy: TestProxy;
  get(path: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string }>;
  /** The policy's report once `n` outcomes are in (bounded wait). */
  report(n: number): Promise<CompareReport['policies'][number]>;
  samples(endpoint: string, field: string): Promise<SamplesReport>;
}

async function rig(o: { primary: Respond; candidate: Respond; reference?: Respond; compare?: Json; policy?: Json }): Promise<Rig> {
  const primary = await upstream(o.primary);
  const candidate = await upstream(o.candidate);
  const reference = o.reference ? await upstream(o.reference) : null;
  const compare = { ...(reference ? { reference_cluster: 'reference' } : {}), ...o.compare };
  const proxy = await startProxy(extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 'cand', cluster: 'candidate', compare, ...o.policy }])],
    clusters: [cluster('primary', [primary.port]), cluster('candidate', [candidate.port]), ...(reference ? [cluster('reference', [reference.port])] : [])],
  }));
  cleanups.push(() => proxy.stop());
  return {
    proxy,
    async get(path, init = {}) {
      const res = await request(`${proxy.url}${path}`, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body, headersTimeout: 10_000, bodyTimeout: 10_000 });
      return { status: res.statusCode, body: await res.body.text() };
    },
    async report(n) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const r = JSON.parse((await fetchText(`${proxy.adminUrl}/mirror/compare?format=json`)).body) as CompareReport;
        const p = r.policies.find((x) => x.name === 'cand')!;
        const done = Object.values(p.outcomes).reduce((a, b) => a + b, 0);
        if (done >= n) return p;
        if (Date.now() > deadline) throw new Error(`${done} of ${n} outcomes after 15 s: ${JSON.stringify(p.outcomes)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async samples(endpoint, field) {
      const q = new URLSearchParams({ policy: 'cand', endpoint, field });
      return JSON.parse((await fetchText(`${proxy.adminUrl}/mirror/compare/samples?${q}`)).body) as SamplesReport;
    },
  };
}

const fields = (p: CompareReport['policies'][number]): string[] => p.endpoints.flatMap((e) => e.fields.map((f) => f.path)).sort();
const nonZero = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).filter(([, n]) => n > 0));

// Proves: a gzip primary and a br candidate with the same JSON match (decoded first, and the
// differing content-encoding header is the one difference); a changed field inside gzip is found by path.
test('gzip and br bodies are decoded before they are compared', async () => {
  const doc = (price: number): Buffer => Buffer.from(JSON.stringify({ item: 'lamp', price, tags: ['a', 'b'] }));
  const r = await rig({
    primary: (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(zlib.gzipSync(doc(10)));
    },
    candidate: (req, res) => {
      const br = req.url.startsWith('/br');
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': br ? 'br' : 'gzip' });
      res.end(br ? zlib.brotliCompressSync(doc(10)) : zlib.gzipSync(doc(req.url.startsWith('/changed') ? 12 : 10), { level: 1 }));
    },
  });
  expect((await r.get('/br')).status).toBe(200);
  expect((await r.get('/same')).status).toBe(200);
  expect((await r.get('/changed')).status).toBe(200);
  const p = await r.report(3);
  expect(nonZero(p.outcomes)).toEqual({ diff: 2, match: 1 });
  const byEndpoint = Object.fromEntries(p.endpoints.map((e) => [e.name, e.fields.map((f) => f.path)]));
  expect(byEndpoint).toEqual({ 'GET /br': ['header.content-encoding:changed'], 'GET /changed': ['body.price:changed'], 'GET /same': [] });
  const s = await r.samples('GET /changed', 'body.price:changed');
  expect(s.samples[0]!.differences.map((d) => [d.exactPath, d.primary, d.other])).toEqual([['body.price', '10', '12']]);
}, 30_000);

// Proves: a 50 MB response is compared whole, by hash: equal gives match; one byte changed at the
// end gives body:changed and no field paths; the kept copy stays at its bound (the store holds
// kilobytes, not megabytes); the client gets all 50 MB from the primary.
test('a 50 MB response is compared by hash only', async () => {
  const size = 50 * 1024 * 1024;
  const big = Buffer.alloc(size, 0x61);
  const changed = Buffer.from(big);
  changed[size - 1] = 0x62;
  const send = (body: Buffer): Respond => (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  };
  const r = await rig({ primary: send(big), candidate: (req, res) => send(req.url === '/differs' ? changed : big)(req, res) });
  expect((await r.get('/equal')).body.length).toBe(size);
  expect((await r.get('/differs')).body.length).toBe(size);
  const p = await r.report(2);
  expect(nonZero(p.outcomes)).toEqual({ match: 1, diff: 1 });
  expect(fields(p)).toEqual(['body:changed']);
  const report = JSON.parse((await fetchText(`${r.proxy.adminUrl}/mirror/compare?format=json`)).body) as CompareReport;
  expect(report.memory.bytes).toBeLessThan(64 * 1024);
}, 60_000);

// Proves: POST is mirrored but not compared by default (skipped_method); listed in methods, it is.
test('unsafe methods are skipped unless listed', async () => {
  const echo: Respond = (req, res) => jsonReply({ got: req.body.toString() })(req, res);
  const r = await rig({ primary: echo, candidate: echo });
  await r.get('/a', { method: 'POST', body: 'x' });
  await r.get('/a');
  expect(nonZero((await r.report(2)).outcomes)).toEqual({ skipped_method: 1, match: 1 });

  const listed = await rig({ primary: echo, candidate: echo, compare: { methods: ['POST'] } });
  await listed.get('/a', { method: 'POST', body: 'hello' });
  await listed.get('/a');
  expect(nonZero((await listed.report(2)).outcomes)).toEqual({ match: 1, skipped_method: 1 });
});

// Proves: a candidate that answers late is shadow_timeout (compare.timeout), one that is down is
// shadow_error, one too large is too_large; the client is served by the primary at once each time.
test('shadow failures each get their outcome, and the client never waits for them', async () => {
  const slow = await rig({
    primary: jsonReply({ a: 1 }),
    candidate: (req, res) => void setTimeout(() => jsonReply({ a: 1 })(req, res), 1500),
    compare: { timeout: '0.2s' },
  });
  const t0 = performance.now();
  expect((await slow.get('/x')).body).toBe('{"a":1}');
  expect(performance.now() - t0).toBeLessThan(1000);
  expect(nonZero((await slow.report(1)).outcomes)).toEqual({ shadow_timeout: 1 });

  const primary = await upstream(jsonReply({ a: 1 }));
  const down = await startProxy(extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 'cand', cluster: 'candidate', compare: {} }])],
    clusters: [cluster('primary', [primary.port]), cluster('candidate', [1])],
  }));
  cleanups.push(() => down.stop());
  expect((await fetchText(`${down.url}/x`)).body).toBe('{"a":1}');
  const deadline = Date.now() + 10_000;
  let outcomes: Record<string, number> = {};
  while (Date.now() < deadline) {
    outcomes = nonZero((JSON.parse((await fetchText(`${down.adminUrl}/mirror/compare?format=json`)).body) as CompareReport).policies[0]!.outcomes);
    if (Object.keys(outcomes).length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(outcomes).toEqual({ shadow_error: 1 });

  const large = await rig({ primary: jsonReply({ a: 1 }), candidate: jsonReply({ a: 'x'.repeat(5000) }), compare: { body: { max_bytes: 1000, max_capture_bytes: 500 } } });
  await large.get('/x');
  expect(nonZero((await large.report(1)).outcomes)).toEqual({ too_large: 1 });
});

// Proves: secrets never reach a stored sample: authorization and cookie on the request,
// set-cookie on the responses, a listed header and a listed JSON body path; the differing field's
// values are there.
test('samples are redacted before they are stored', async () => {
  const body = (v: number): Respond => jsonReply({ user: { email: 'alice@example.com', token: 'tok-SECRET-3' }, v }, { 'set-cookie': 'sid=SECRET-2', 'x-internal': 'SECRET-4' });
  const r = await rig({ primary: body(1), candidate: body(2), compare: { store: { redact_headers: ['x-internal'], redact_body_paths: ['body.user.token'] } } });
  await r.get('/u', { headers: { authorization: 'Bearer SECRET-1', cookie: 'sid=SECRET-5', 'x-internal': 'SECRET-4' } });
  const p = await r.report(1);
  expect(fields(p)).toEqual(['body.v:changed']);
  const text = JSON.stringify(await r.samples('GET /u', 'body.v:changed'));
  expect(text).toContain('alice@example.com');
  for (const secret of ['SECRET-1', 'SECRET-2', 'SECRET-3', 'SECRET-4', 'SECRET-5']) expect(text).not.toContain(secret);
  expect(text).toContain('[redacted]');
});

// Proves: 10,000 distinct field paths (each of 200 responses adds 50 new keys: more in one object
// would count it as a map, under one path) keep the store inside its configured bound, evicting
// the least recently updated fields, and the newest are still there.
test('the store stays within its bound with 10,000 distinct paths', async () => {
  const keys = (req: RecordedRequest, salt: string): Record<string, string> => {
    const n = Number(req.url.slice(1));
    return Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${n}x${i}`, `${salt}${i}`]));
  };
  const r = await rig({
    primary: (req, res) => jsonReply(keys(req, 'p'))(req, res),
    candidate: (req, res) => jsonReply(keys(req, 'c'))(req, res),
    compare: { store: { max_bytes: 262144 } },
  });
  for (let i = 0; i < 200; i++) await r.get(`/${i}`);
  const p = await r.report(200);
  expect(p.outcomes.diff).toBe(200);
  expect(p.memory.bytes).toBeLessThanOrEqual(262144);
  expect(p.memory.evicted_fields).toBeGreaterThan(5000);
  expect(fields(p)).toContain('body.k199x49:changed');
  expect(fields(p)).not.toContain('body.k0x0:changed');
});

// Proves: Prometheus has a counter per policy and outcome and the legs' latency histograms, and no
// label holds a field path.
test('metrics: outcomes per policy and latency per leg, no per-path series', async () => {
  const r = await rig({ primary: jsonReply({ v: 1 }), candidate: jsonReply({ v: 2 }), reference: jsonReply({ v: 1 }) });
  await r.get('/m');
  await r.report(1);
  const prom = (await fetchText(`${r.proxy.adminUrl}/stats/prometheus`)).body;
  expect(prom).toMatch(/sidemirror_mirror_compare_total\{policy="cand",outcome="diff"\} 1/);
  for (const leg of ['primary', 'candidate', 'reference']) expect(prom).toMatch(new RegExp(`sidemirror_mirror_compare_response_time_count\\{policy="cand",leg="${leg}"\\} 1`));
  expect(prom).not.toContain('body.v');
});
