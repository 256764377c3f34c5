import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { bootstrap, cluster, listener, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { sleep } from '../harness/upstream';

// Issue 12 review (second pass), retries under hostile clients: a slow upload while the first
// attempt fails, a body past the buffer limit, a storm of retries against the max_retries
// breaker, and retry headers from an external client.

jest.setTimeout(30_000);

type Json = Record<string, unknown>;
const FAST = { base_interval: '0.005s', max_interval: '0.01s' };

interface Seen { n: number; bodies: Buffer[]; headers: http.IncomingHttpHeaders[]; inFlight: number; maxInFlight: number }

/** An upstream whose answer is chosen per request (its 0-based index); `early` answers before reading the body. */
async function scripted(choose: (i: number) => { status: number; early: boolean }): Promise<{ port: number; seen: Seen; close(): Promise<void> }> {
  const seen: Seen = { n: 0, bodies: [], headers: [], inFlight: 0, maxInFlight: 0 };
  const server = http.createServer((req, res) => {
    const i = seen.n++;
    seen.headers.push(req.headers);
    seen.inFlight++;
    seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
    res.once('close', () => seen.inFlight--);
    const { status, early } = choose(i);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    const answer = (): void => {
      const body = `attempt ${i}`;
      res.writeHead(status, { 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (early) answer();
    req.on('end', () => {
      seen.bodies[i] = Buffer.concat(chunks);
      if (!early) answer();
    });
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: async () => { for (const s of sockets) s.destroy(); await new Promise<void>((r) => server.close(() => r())); },
  };
}

const running: TestProxy[] = [];
afterEach(async () => { for (const p of running.splice(0)) await p.stop(); });

async function proxy(routes: Json[], clusterExtra: Json, port: number): Promise<TestProxy> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(routes))], clusters: [cluster('backend', [port], clusterExtra)] }));
  running.push(p);
  return p;
}

/** A chunked POST written in `pieces` pieces, `gapMs` apart; resolves the raw response text. */
function slowChunkedPost(port: number, pieces: Buffer[], gapMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error(`no answer; got ${JSON.stringify(got.slice(0, 100))}`)); }, 20_000);
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => { clearTimeout(t); resolve(got); });
    s.on('error', () => undefined);
    s.once('connect', async () => {
      s.write('POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n');
      for (const p of pieces) {
        await sleep(gapMs);
        if (s.destroyed) return;
        s.write(`${p.length.toString(16)}\r\n`);
        s.write(p);
        s.write('\r\n');
      }
      s.write('0\r\n\r\n');
    });
  });
}

test('a slow upload whose first attempt is answered 503 early: the retry gets the whole body, in order', async () => {
  const up = await scripted((i) => (i === 0 ? { status: 503, early: true } : { status: 200, early: false }));
  try {
    const p = await proxy([{ match: { prefix: '/' }, route: { cluster: 'backend', retry_policy: { retry_on: '5xx', num_retries: 2, retry_back_off: FAST } } }], {}, up.port);
    const pieces = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000, 65 + i));
    const raw = await slowChunkedPost(p.port, pieces, 40);
    expect(raw.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(raw.endsWith('attempt 1')).toBe(true);
    expect(up.seen.n).toBe(2);
    expect(up.seen.bodies[1]?.equals(Buffer.concat(pieces))).toBe(true);
  } finally {
    await up.close();
  }
});

test('a POST past per_request_buffer_limit_bytes with retry_on 5xx: one attempt, its body intact, no retry', async () => {
  const up = await scripted(() => ({ status: 503, early: false }));
  try {
    const p = await proxy([{ match: { prefix: '/' }, route: { cluster: 'backend', retry_policy: { retry_on: '5xx', num_retries: 3, retry_back_off: FAST } }, per_request_buffer_limit_bytes: 1024 }], {}, up.port);
    const body = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const res = await fetchText(`${p.url}/big`, { method: 'POST', body });
    expect(res.status).toBe(503);
    expect(up.seen.n).toBe(1);
    expect(up.seen.bodies[0]?.equals(body)).toBe(true);
    expect(await statValue(p.adminUrl, 'cluster.backend.retry_or_shadow_abandoned')).toBe(1);
    expect(await statValue(p.adminUrl, 'cluster.backend.upstream_rq_retry')).toBe(0);
  } finally {
    await up.close();
  }
});

test('an upstream that always 503s, num_retries 10, 40 clients at once: max_retries 2 bounds the retries in flight', async () => {
  const up = await scripted(() => ({ status: 503, early: false }));
  try {
    const p = await proxy([{ match: { prefix: '/' }, route: { cluster: 'backend', retry_policy: { retry_on: '5xx', num_retries: 10, retry_back_off: { base_interval: '0.05s', max_interval: '0.1s' } } } }],
      { circuit_breakers: { thresholds: [{ max_retries: 2 }] } }, up.port);
    const results = await Promise.all(Array.from({ length: 40 }, () => fetchText(`${p.url}/x`)));
    expect(results.map((r) => r.status)).toEqual(Array(40).fill(503));
    const retries = await statValue(p.adminUrl, 'cluster.backend.upstream_rq_retry');
    const overflow = await statValue(p.adminUrl, 'cluster.backend.upstream_rq_retry_overflow');
    const exceeded = await statValue(p.adminUrl, 'cluster.backend.upstream_rq_retry_limit_exceeded');
    // Each request ends either by overflow or by using all 10 retries.
    expect(overflow).toBeGreaterThan(0);
    expect(overflow + exceeded).toBe(40);
    expect(up.seen.n).toBe(40 + retries);
    expect(await statValue(p.adminUrl, 'cluster.backend.circuit_breakers.default.rq_retry_open')).toBe(0);
  } finally {
    await up.close();
  }
});

test('x-envoy-max-retries and x-envoy-retry-on from an external client are ignored and not forwarded', async () => {
  const up = await scripted(() => ({ status: 503, early: false }));
  try {
    const p = await proxy([{ match: { prefix: '/' }, route: { cluster: 'backend' } }], {}, up.port);
    const res = await fetchText(`${p.url}/x`, { headers: { 'x-envoy-max-retries': '5', 'x-envoy-retry-on': '5xx', 'x-envoy-retriable-status-codes': '503' } });
    expect(res.status).toBe(503);
    await sleep(200);
    expect(up.seen.n).toBe(1);
    expect(Object.keys(up.seen.headers[0] ?? {}).filter((h) => h.startsWith('x-envoy-retr') || h === 'x-envoy-max-retries')).toEqual([]);
    expect(await statValue(p.adminUrl, 'cluster.backend.upstream_rq_retry')).toBe(0);
  } finally {
    await up.close();
  }
});
