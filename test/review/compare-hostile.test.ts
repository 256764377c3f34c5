import * as crypto from 'node:crypto';
import type * as http from 'node:http';
import * as net from 'node:net';
import * as zlib from 'node:zlib';
import type { RecordedRequest } from '../harness/upstream';
import { request as adminRequest } from '../harness/compare-admin';
import { closeAll, fieldsOf, heapAfterGc, jsonReply, nonZero, rig, sleep } from './compare-rig';

// An attacker's review of response comparison (issue 11), with real sockets: a candidate that
// answers with bombs, garbage, endless or dripping bodies, hostile JSON and headers meant to
// blow the store; a client sending hostile paths and headers. What must hold each time: the
// client gets the primary's response byte for byte, the process stays up, the comparison ends in
// one outcome, and the bounds hold. These tests pass on h-review at a901790.

jest.setTimeout(90_000);

afterEach(closeAll);

const KiB = 1024;
const MiB = 1024 * KiB;

// Proves: a gzip bomb (200 concatenated gzip members of 1 MiB of zeros: 200 MiB decoded from
// about 200 KB) is too_large at the 64 MiB decoded bound, the client gets the primary's answer,
// and the next comparison on the same proxy still works.
test('a gzip bomb from the candidate is too_large; the client and the next comparison are unaffected', async () => {
  const member = zlib.gzipSync(Buffer.alloc(MiB));
  const bomb = Buffer.concat(Array.from({ length: 200 }, () => member));
  expect(bomb.length).toBeLessThan(512 * KiB);
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: {
      http: (req, res) => {
        if (req.url === '/bomb') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bomb.length });
          res.end(bomb);
        } else jsonReply({ a: 1 })(req, res);
      },
    },
  });
  const res = await r.get('/bomb');
  expect([res.status, res.body.toString()]).toEqual([200, '{"a":1}']);
  expect(nonZero((await r.report(1)).outcomes)).toEqual({ too_large: 1 });
  await r.get('/fine');
  expect(nonZero((await r.report(2)).outcomes)).toEqual({ too_large: 1, match: 1 });
});

// Proves: a brotli bomb (96 MiB of zeros in a few hundred bytes) and a raw-deflate one are too_large too.
test('brotli and raw deflate bombs are too_large', async () => {
  const zeros = Buffer.alloc(96 * MiB);
  const br = zlib.brotliCompressSync(zeros, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } });
  const raw = zlib.deflateRawSync(zeros, { level: 1 });
  expect(br.length).toBeLessThan(64 * KiB);
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: {
      http: (req, res) => {
        const body = req.url === '/br' ? br : raw;
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': req.url === '/br' ? 'br' : 'deflate' });
        res.end(body);
      },
    },
  });
  expect((await r.get('/br')).body.toString()).toBe('{"a":1}');
  expect((await r.get('/deflate')).body.toString()).toBe('{"a":1}');
  expect(nonZero((await r.report(2)).outcomes)).toEqual({ too_large: 2 });
});

// Proves: `content-encoding: gzip` over garbage (and over a truncated gzip) is compared by its raw
// bytes: a diff with body:changed, no crash, no field paths made up from garbage.
test('garbage and truncated gzip from the candidate are a plain body:changed', async () => {
  const truncated = zlib.gzipSync(Buffer.from(JSON.stringify({ a: 1, pad: 'x'.repeat(5000) }))).subarray(0, 40);
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: {
      http: (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(req.url === '/garbage' ? crypto.randomBytes(4096) : truncated);
      },
    },
  });
  await r.get('/garbage');
  await r.get('/truncated');
  const p = await r.report(2);
  expect(nonZero(p.outcomes)).toEqual({ diff: 2 });
  expect([...new Set(fieldsOf(p))]).toEqual(['body:changed', 'header.content-encoding:added']);
});

// Proves: a candidate body that never ends (64 KiB writes as fast as the socket takes them) is
// too_large at max_bytes and its connection is closed by the proxy, not read forever.
test('an endless candidate body is too_large and its connection is closed', async () => {
  let closed = 0;
  const chunk = Buffer.alloc(64 * KiB, 0x61);
  const candidate = {
    raw: (s: net.Socket): void => {
      s.on('close', () => closed++);
      s.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n');
      const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
      let sent = 0;
      const pump = (): void => {
        // Bounded: 512 MiB at most, far past the 2 MiB bound.
        while (!s.destroyed && sent < 8192) {
          sent++;
          if (!s.write(frame)) return void s.once('drain', pump);
        }
      };
      pump();
    },
  };
  const r = await rig({ primary: { http: jsonReply({ a: 1 }) }, candidate, compare: { body: { max_bytes: 2 * MiB } } });
  expect((await r.get('/e')).body.toString()).toBe('{"a":1}');
  expect(nonZero((await r.report(1)).outcomes)).toEqual({ too_large: 1 });
  const deadline = Date.now() + 10_000;
  while (closed === 0 && Date.now() < deadline) await sleep(50);
  expect(closed).toBe(1);
});

// Proves: a candidate that drips one byte every 100 ms and never ends is shadow_timeout at
// compare.timeout; the client has its answer long before; the drip's connection is then closed.
test('a slow-drip, never-ending candidate is shadow_timeout and then let go', async () => {
  let closed = false;
  const timers = new Set<NodeJS.Timeout>();
  const candidate = {
    raw: (s: net.Socket): void => {
      s.on('close', () => (closed = true));
      s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n');
      let n = 0;
      const t = setInterval(() => {
        if (s.destroyed || ++n > 300) {
          clearInterval(t);
          return;
        }
        s.write('1\r\n \r\n');
      }, 100);
      timers.add(t);
    },
  };
  try {
    const r = await rig({ primary: { http: jsonReply({ a: 1 }) }, candidate, compare: { timeout: '0.5s' } });
    const res = await r.get('/drip');
    expect(res.body.toString()).toBe('{"a":1}');
    // Generous: the client's answer does not wait for the candidate's 30 s of drip.
    expect(res.ms).toBeLessThan(5000);
    expect(nonZero((await r.report(1)).outcomes)).toEqual({ shadow_timeout: 1 });
    const deadline = Date.now() + 10_000;
    while (!closed && Date.now() < deadline) await sleep(50);
    expect(closed).toBe(true);
  } finally {
    for (const t of timers) clearInterval(t);
  }
});

// Proves: JSON nested 100,000 deep (no stack overflow: compared as text), an object with 200,000
// keys (a map, one path), and `__proto__` / `constructor.prototype` keys (no prototype
// pollution) each end in a diff with sane paths, and the process serves on.
test('deep, wide and prototype-polluting JSON is compared without harm', async () => {
  const deep = (leaf: string): string => `${'['.repeat(100_000)}${leaf}${']'.repeat(100_000)}`;
  const wide = (v: number): string => `{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":${v}`).join(',')}}`;
  const bodies: Record<string, [string, string]> = {
    '/deep': [deep('1'), deep('2')],
    '/wide': [wide(1), wide(2)],
    '/proto': ['{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}', '{"__proto__":{"polluted":2},"constructor":{"prototype":{"polluted":2}}}'],
  };
  const side = (i: 0 | 1) => (req: RecordedRequest, res: http.ServerResponse): void => jsonReply(bodies[req.url]![i])(req, res);
  const r = await rig({ primary: { http: side(0) }, candidate: { http: side(1) }, compare: { body: { max_capture_bytes: 8 * MiB } } });
  for (const url of Object.keys(bodies)) expect((await r.get(url)).status).toBe(200);
  const p = await r.report(3);
  expect(nonZero(p.outcomes)).toEqual({ diff: 3 });
  const byEndpoint = Object.fromEntries(p.endpoints.map((e) => [e.name, e.fields.map((f) => f.path).sort()]));
  expect(byEndpoint).toEqual({
    'GET /deep': ['body:changed'],
    'GET /wide': ['body.*:changed'],
    'GET /proto': ['body.__proto__.polluted:changed', 'body.constructor.prototype.polluted:changed'],
  });
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  // The sample view renders them too.
  const page = await adminRequest(Number(new URL(r.proxy.adminUrl).port), 'GET', `/mirror/compare?policy=cand&endpoint=${encodeURIComponent('GET /proto')}&field=${encodeURIComponent('body.__proto__.polluted:changed')}`);
  expect(page.status).toBe(200);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});

// Proves: a candidate adding 300 new header names to every response cannot push the store past
// store.max_bytes: old fields are evicted and counted, and the newest response's last fields are kept.
test('a header flood stays within store.max_bytes', async () => {
  let n = 0;
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: {
      http: (_req, res) => {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        const k = n++;
        for (let i = 0; i < 300; i++) headers[`x-flood-${k}-${i}`] = 'v';
        res.writeHead(200, headers);
        res.end('{"a":1}');
      },
    },
    compare: { store: { max_bytes: 256 * KiB } },
  });
  for (let i = 0; i < 100; i++) expect((await r.get('/flood')).status).toBe(200);
  const p = await r.report(100);
  expect(p.outcomes.diff).toBe(100);
  expect(p.memory.bytes).toBeLessThanOrEqual(256 * KiB);
  expect(p.memory.evicted_fields).toBeGreaterThan(25_000);
  expect(fieldsOf(p)).toContain('header.x-flood-99-299:added');
});

// Proves: a client asking for 3,000 distinct endpoints cannot push the store past
// store.max_bytes; the endpoints that went are counted.
test('an endpoint flood stays within store.max_bytes', async () => {
  const r = await rig({ primary: { http: jsonReply({ a: 1 }) }, candidate: { http: jsonReply({ a: 2 }) }, compare: { store: { max_bytes: 64 * KiB } } });
  const word = (i: number): string => [...i.toString(26)].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join('');
  for (let i = 0; i < 3000; i++) expect((await r.get(`/w${word(i)}`)).status).toBe(200);
  const p = await r.report(3000);
  expect(p.outcomes.diff).toBe(3000);
  expect(p.memory.bytes).toBeLessThanOrEqual(64 * KiB);
  expect(p.memory.evicted_endpoints).toBeGreaterThan(1000);
});

// Proves: with comparison on, the client receives the primary's bytes unchanged (a gzip body is
// passed through encoded, headers as sent), and the comparison still decodes it.
test('the client gets the primary\'s exact bytes while they are teed', async () => {
  const doc = Buffer.from(JSON.stringify({ items: Array.from({ length: 2000 }, (_, i) => ({ i, name: `item ${i}` })) }));
  const gz = zlib.gzipSync(doc);
  const r = await rig({
    primary: { http: (_req, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'x-primary': 'yes' }); res.end(gz); } },
    candidate: { http: (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(doc); } },
  });
  const res = await r.get('/bytes');
  expect(res.headers['content-encoding']).toBe('gzip');
  expect(res.headers['x-primary']).toBe('yes');
  expect(res.body.equals(gz)).toBe(true);
  const p = await r.report(1);
  // Decoded, the bodies are equal: only the header differs.
  expect(fieldsOf(p)).toEqual(['header.content-encoding:missing', 'header.x-primary:missing']);
});

// Proves: HTML and script in the client's path and headers and in the candidate's header values,
// JSON keys and values come out of the report page and its sample view escaped; no extra element
// or script appears in the page.
test('hostile values from the client and the candidate are escaped on the page', async () => {
  const evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
  const r = await rig({
    primary: { http: jsonReply({ a: 1, k: 'x' }) },
    candidate: {
      raw: (s) => {
        const body = JSON.stringify({ a: 2, k: evil, [evil]: evil });
        s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-evil: ${evil}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      },
    },
  });
  // Through a raw socket, so that the path reaches the proxy as typed.
  const path = '/a<script>window.__pwned=3</script>"\'';
  await new Promise<void>((resolve, reject) => {
    const c = net.connect(r.proxy.port, '127.0.0.1', () => c.write(`GET ${path} HTTP/1.1\r\nHost: shop\r\nx-client: ${evil}\r\nconnection: close\r\n\r\n`));
    c.on('data', () => undefined);
    c.on('end', () => resolve());
    c.on('error', reject);
  });
  const p = await r.report(1);
  const endpoint = p.endpoints[0]!.name;
  expect(endpoint).toContain('<script>');
  const adminPort = Number(new URL(r.proxy.adminUrl).port);
  for (const field of p.endpoints[0]!.fields.map((f) => f.path)) {
    const page = await adminRequest(adminPort, 'GET', `/mirror/compare?policy=cand&endpoint=${encodeURIComponent(endpoint)}&field=${encodeURIComponent(field)}`);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'nonce-");
    // Our one script element, and no image; the hostile text only ever escaped.
    expect(page.body.match(/<script/g)).toHaveLength(1);
    expect(page.body).not.toMatch(/<img/i);
    expect(page.body).not.toContain('onerror="');
    expect(page.body).toContain('&lt;script&gt;window.__pwned=');
  }
});

// Proves: the report's state changes refuse a forged browser request (foreign Origin, Origin null,
// foreign Host as after DNS rebinding, Sec-Fetch-Site: cross-site) and GET; nothing changed;
// `back` never redirects off the report.
test('CSRF against the report\'s POSTs is refused, and back= is no open redirect', async () => {
  const r = await rig({ primary: { http: jsonReply({ a: 1 }) }, candidate: { http: jsonReply({ a: 2 }) } });
  await r.get('/c');
  await r.report(1);
  const port = Number(new URL(r.proxy.adminUrl).port);
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = 'policy=cand&path=body.a';
  const forged: Array<Record<string, string>> = [
    { origin: 'http://evil.example' },
    { origin: 'null' },
    { origin: `http://127.0.0.1:${port + 1}` },
    { host: `rebind.example:${port}` },
    { host: `127.0.0.1:${port}`, 'sec-fetch-site': 'cross-site' },
  ];
  for (const route of ['noise', 'unnoise', 'reset']) {
    for (const h of forged) expect([route, h, (await adminRequest(port, 'POST', `/mirror/compare/${route}`, { ...form, ...h }, body)).status]).toEqual([route, h, 403]);
    expect((await adminRequest(port, 'GET', `/mirror/compare/${route}?${body}`)).status).toBe(405);
  }
  const p = (await r.fullReport()).policies[0]!;
  expect([p.rules.runtime, p.outcomes.diff]).toEqual([[], 1]);
  for (const back of ['//evil.example/', 'http://evil.example/mirror/compare', '/mirror/compare/../../quitquitquit', '/mirror/compare?x=1\\evil']) {
    const res = await adminRequest(port, 'POST', '/mirror/compare/noise', { ...form, accept: 'text/html' }, `policy=cand&path=body.a&back=${encodeURIComponent(back)}`);
    expect([back, res.status, res.headers.location]).toEqual([back, 303, '/mirror/compare']);
  }
});

// Proves: 100 compared requests whose candidate answers 1 MiB in ordinary 64 KiB chunks leave
// the heap where it was once they are done (captures are let go; only the store's few KiB stay).
test('captures of large candidate bodies are released after their comparison', async () => {
  const big = Buffer.alloc(MiB, 0x62);
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: { http: (_req, res) => { res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length }); res.end(big); } },
  });
  await r.get('/warm');
  await r.report(1);
  const before = heapAfterGc();
  for (let i = 0; i < 100; i++) await r.get(`/big/${i}`);
  await r.report(101);
  expect(heapAfterGc() - before).toBeLessThan(16 * MiB);
});

// Proves: 300 clients that leave before the primary answers (more than max_pending's 256) each
// end their comparison as primary_error and give their pending slot back: the next request is
// compared, not skipped_limit. A candidate that resets mid-body is shadow_error, likewise released.
test('clients that leave and candidates that reset release their pending comparisons', async () => {
  const r = await rig({
    primary: { http: (req, res) => void setTimeout(() => { if (!res.destroyed) jsonReply({ a: 1 })(req, res); }, req.url.startsWith('/leave') ? 300 : 0) },
    candidate: {
      raw: (s, head) => {
        if (head.startsWith('GET /reset')) {
          s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a":');
          setTimeout(() => s.destroy(), 20);
          return;
        }
        s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}');
      },
    },
  });
  const leave = (i: number): Promise<void> => new Promise((resolve) => {
    const c = net.connect(r.proxy.port, '127.0.0.1', () => {
      c.write(`GET /leave/${i} HTTP/1.1\r\nHost: shop\r\n\r\n`);
      setTimeout(() => c.destroy(), 50);
    });
    c.on('close', () => resolve());
    c.on('error', () => resolve());
  });
  for (let batch = 0; batch < 6; batch++) await Promise.all(Array.from({ length: 50 }, (_, i) => leave(batch * 50 + i)));
  for (let i = 0; i < 5; i++) await r.get('/reset');
  const p = await r.report(305);
  expect(nonZero(p.outcomes)).toEqual({ primary_error: 300, shadow_error: 5 });
  expect((await r.get('/after')).body.toString()).toBe('{"a":1}');
  // Compared (a diff: the raw candidate sends no date or keep-alive headers), not skipped_limit.
  expect(nonZero((await r.report(306)).outcomes)).toEqual({ primary_error: 300, shadow_error: 5, diff: 1 });
});
