import type * as http from 'node:http';
import { Readable } from 'node:stream';
import type { Pool } from 'undici';
import { classifyUpstreamError } from '../../src/upstream/errors';
import type { Http1Pool } from '../../src/upstream/h1/pool';
import type { UpstreamPool } from '../../src/upstream/h2-pool';
import { type TestServer, header, httpServer, pool, record, scriptedServer, send, until } from '../harness/h1-pool-kit';

// The HTTP/1.1 pool against real node:http servers on 127.0.0.1: keep-alive, reuse order,
// queueing, bodies both ways with back-pressure, and the request checks undici makes. Both ways
// of reading responses (the parser consuming the socket, and 'data' events) run the same tests.

// Compile-time: it fits where undici's Pool fits.
const fits: Http1Pool extends UpstreamPool ? true : never = true;
const undiciFits: Pool extends UpstreamPool ? true : never = true;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(onRequest: http.RequestListener): Promise<TestServer> {
  const s = await httpServer(onRequest);
  cleanups.push(() => s.close());
  return s;
}

function open(s: TestServer, options: Parameters<typeof pool>[1] = {}): Http1Pool {
  const p = pool(s.origin, options);
  cleanups.push(() => p.destroy());
  return p;
}

/** Echoes method, path, headers and the body's length and framing back as JSON. */
const echo: http.RequestListener = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, raw: req.rawHeaders, body: Buffer.concat(chunks).toString('latin1'), port: req.socket.remotePort }));
  });
};

const json = (o: { body: Buffer }): { method: string; url: string; raw: string[]; body: string; port: number } => JSON.parse(o.body.toString());

describe.each(['consume', 'data'] as const)('reading with %s', (read) => {
  test('keep-alive: sequential requests share one connection; the head is as undici writes it', async () => {
    const s = await serve(echo);
    const p = open(s, { read });
    const a = await send(p, { path: '/a?x=1', headers: { 'x-one': '1', 'x-list': ['a', 'b'] } });
    expect(a.error).toBeNull();
    expect(a.calls).toEqual(['connect', 'headers', 'data', 'complete']);
    expect(a.status).toBe(200);
    expect(a.headers.every((h) => Buffer.isBuffer(h))).toBe(true);
    expect(header(a.headers, 'content-type')).toBe('application/json');
    expect(a.trailers).toBeNull();
    const seen = json(a);
    expect(seen.url).toBe('/a?x=1');
    expect(seen.raw).toEqual(['host', `127.0.0.1:${s.port}`, 'connection', 'keep-alive', 'x-one', '1', 'x-list', 'a', 'x-list', 'b']);
    const b = await send(p, { path: '/b', method: 'POST', headers: ['x-two', '2', 'host', 'upstream.example'], body: 'hello' });
    expect(json(b).raw).toEqual(['host', 'upstream.example', 'connection', 'keep-alive', 'x-two', '2', 'content-length', '5']);
    expect(json(b).body).toBe('hello');
    expect(s.sockets.length).toBe(1);
  });

  test('the most recently used idle connection is reused first; no pipelining', async () => {
    let inFlight = 0;
    let most = 0;
    const s = await serve((req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end(String(req.socket.remotePort));
      }, req.url === '/slow' ? 80 : 5);
    });
    const p = open(s, { read });
    // Two at once open two connections; the slow one is released last.
    const [fast, slow] = await Promise.all([send(p, { path: '/fast' }), send(p, { path: '/slow' })]);
    expect(s.sockets.length).toBe(2);
    expect(fast.body.toString()).not.toBe(slow.body.toString());
    // The connection released last is reused (from the next turn on: before it, an idle one that was already there serves).
    const nextTurn = (): Promise<unknown> => new Promise((r) => setImmediate(r));
    await nextTurn();
    expect((await send(p)).body.toString()).toBe(slow.body.toString());
    await nextTurn();
    expect((await send(p)).body.toString()).toBe(slow.body.toString());
    expect(s.sockets.length).toBe(2);
    // With one connection, three requests wait their turn: never two on it at once.
    const one = open(s, { read, maxConnections: 1 });
    most = 0;
    const all = await Promise.all([send(one), send(one), send(one)]);
    expect(all.map((o) => o.status)).toEqual([200, 200, 200]);
    expect(most).toBe(1);
  });

  test('response back-pressure: nothing is told while paused; all of it after resume, then the connection serves again', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 7);
    const s = await serve((_req, res) => res.end(big));
    const p = open(s, { read });
    let paused = false;
    let whilePaused = 0;
    let pauses = 0;
    let n = 0;
    const r = record({
      onData: (_chunk, resume) => {
        if (paused) whilePaused++;
        // Pause on every fourth chunk (twenty times at most), and resume a little later.
        if (++n % 4 === 0 && pauses < 20) {
          paused = true;
          pauses++;
          setTimeout(() => {
            paused = false;
            resume();
          }, 5);
          return false;
        }
        return true;
      },
    });
    p.dispatch({ method: 'GET', path: '/', headers: {} }, r.handler);
    const got = await r.done;
    expect(got.error).toBeNull();
    expect(got.body.equals(big)).toBe(true);
    expect(whilePaused).toBe(0);
    // The end may have been read while paused: reading must have resumed for the next response.
    const next = await send(p);
    expect(next.body.equals(big)).toBe(true);
    expect(s.sockets.length).toBe(1);
  });

  test('paused at the headers: the body waits until resume', async () => {
    const s = await serve((_req, res) => res.end('body'));
    const p = open(s, { read });
    let resumed = false;
    const r = record({
      onHeaders: (_status, resume) => {
        setTimeout(() => {
          resumed = true;
          resume();
        }, 50);
        return false;
      },
      onData: () => {
        expect(resumed).toBe(true);
        return true;
      },
    });
    p.dispatch({ method: 'GET', path: '/', headers: {} }, r.handler);
    const got = await r.done;
    expect(got.body.toString()).toBe('body');
    expect(resumed).toBe(true);
  });

  test('a chunked response with trailers', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { trailer: 'x-sum' });
      res.write('ab');
      res.addTrailers({ 'x-sum': 'abc' });
      res.end('c');
    });
    const p = open(s, { read });
    const got = await send(p);
    expect(got.body.toString()).toBe('abc');
    expect(got.trailers?.map(String)).toEqual(['x-sum', 'abc']);
    // And again, on the same connection (llhttp reports later heads differently once trailers were flushed).
    const again = await send(p);
    expect(header(again.headers, 'trailer')).toBe('x-sum');
    expect(again.trailers?.map(String)).toEqual(['x-sum', 'abc']);
    expect(s.sockets.length).toBe(1);
  });
});

test('request bodies: a stream without a length goes chunked, with one as declared, a Buffer with its length', async () => {
  const s = await serve(echo);
  const p = open(s);
  const chunked = await send(p, { method: 'POST', body: Readable.from([Buffer.from('ab'), Buffer.from('cde')]) });
  expect(json(chunked).raw).toContain('transfer-encoding');
  expect(json(chunked).body).toBe('abcde');
  const declared = await send(p, { method: 'PUT', headers: { 'content-length': '5' }, body: Readable.from([Buffer.from('ab'), Buffer.from('cde')]) });
  expect(json(declared).raw).toEqual(expect.arrayContaining(['content-length', '5']));
  expect(json(declared).raw).not.toContain('transfer-encoding');
  expect(json(declared).body).toBe('abcde');
  const big = Buffer.alloc(100_000, 'z');
  const buffer = await send(p, { method: 'POST', body: big });
  expect(json(buffer).body).toBe(big.toString('latin1'));
  // No body: POST says content-length 0, GET says nothing.
  const empty = await send(p, { method: 'POST' });
  expect(json(empty).raw).toEqual(expect.arrayContaining(['content-length', '0']));
  const get = await send(p, { method: 'GET' });
  expect(json(get).raw).not.toContain('content-length');
  // A stream that has all arrived already still goes chunked: its framing is the request's, not
  // how fast it came (undici would send this one with a content-length; Envoy frames it chunked).
  const ended = new Readable({ read() {} });
  ended.push('xyz');
  ended.push(null);
  const known = await send(p, { method: 'POST', body: ended });
  expect(json(known).raw).toEqual(expect.arrayContaining(['transfer-encoding', 'chunked']));
  expect(json(known).body).toBe('xyz');
  expect(s.sockets.length).toBe(1);
});

test('request back-pressure: a body bigger than the socket buffers arrives whole and in order from a slow reader', async () => {
  const s = await serve((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      req.pause();
      setTimeout(() => req.resume(), 1);
    });
    req.on('end', () => res.end(String(Buffer.concat(chunks).length)));
  });
  const p = open(s);
  const pieces = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 * 1024, i));
  let pausedSeen = false;
  const body = new Readable({
    read() {
      const next = pieces.shift();
      this.push(next ?? null);
    },
  });
  const watch = setInterval(() => (pausedSeen ||= body.isPaused()), 1);
  const got = await send(p, { method: 'POST', body });
  clearInterval(watch);
  expect(got.body.toString()).toBe(String(64 * 64 * 1024));
  expect(pausedSeen).toBe(true);
});

test('content-length mismatches on the request side fail before (or while) writing, as undici does', async () => {
  const s = await serve(echo);
  const p = open(s);
  const before = await send(p, { method: 'POST', headers: { 'content-length': '10' }, body: Buffer.from('abc') });
  expect(before.error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  expect(before.calls).toEqual(['error']);
  const tooLong = await send(p, { method: 'POST', headers: { 'content-length': '2' }, body: Readable.from([Buffer.from('abc')]) });
  expect(tooLong.error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  const tooShort = await send(p, { method: 'POST', headers: { 'content-length': '9' }, body: Readable.from([Buffer.from('abc')]) });
  expect(tooShort.error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  // The pool still works.
  expect((await send(p)).status).toBe(200);
});

test('requests undici refuses are refused before anything is sent, synchronously', async () => {
  const s = await scriptedServer(() => 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
  cleanups.push(() => s.close());
  const p = open(s);
  const cases: Array<[Partial<import('../../src/upstream/h2-pool').UpstreamDispatchOptions>, string]> = [
    [{ headers: { 'x-bad': 'a\r\nb' } }, 'UND_ERR_INVALID_ARG'],
    [{ headers: { 'bad name': 'v' } }, 'UND_ERR_INVALID_ARG'],
    [{ headers: { 'transfer-encoding': 'chunked' } }, 'UND_ERR_INVALID_ARG'],
    [{ headers: { upgrade: 'websocket' } }, 'UND_ERR_INVALID_ARG'],
    [{ headers: { 'keep-alive': 'timeout=5' } }, 'UND_ERR_INVALID_ARG'],
    [{ headers: { expect: '100-continue' } }, 'UND_ERR_NOT_SUPPORTED'],
    [{ headers: ['host', 'a', 'Host', 'b'] }, 'UND_ERR_INVALID_ARG'],
    [{ headers: { 'content-length': '1x' } }, 'UND_ERR_INVALID_ARG'],
    [{ headers: ['odd'] as unknown as string[] }, 'UND_ERR_INVALID_ARG'],
    [{ path: 'no-slash' }, 'UND_ERR_INVALID_ARG'],
    [{ path: '/a b' }, 'UND_ERR_INVALID_ARG'],
    [{ method: 'GE T' }, 'UND_ERR_INVALID_ARG'],
  ];
  for (const [opts, code] of cases) {
    const r = record();
    const accepted = p.dispatch({ method: 'GET', path: '/', headers: {}, ...opts } as import('../../src/upstream/h2-pool').UpstreamDispatchOptions, r.handler);
    expect(accepted).toBe(false);
    // Told at once, inside dispatch.
    expect(r.handler.abort).toBeNull();
    const got = await r.done;
    expect({ opts, code: got.error?.code, calls: got.calls }).toEqual({ opts, code, calls: ['error'] });
    expect(classifyUpstreamError(got.error!)).toBe('reset');
  }
  expect(s.heads).toEqual([]);
  // A `connection: close` is honoured (the pool writes its own connection line), other tokens pass.
  const closing = await send(p, { headers: { connection: 'close, x-hop' } });
  expect(closing.status).toBe(200);
  expect(s.heads[0]).toMatch(/\r\nconnection: close\r\n/);
});

test('maxConnections: requests beyond it queue and run as connections free up; a bounded queue refuses the rest', async () => {
  let inFlight = 0;
  let most = 0;
  const s = await serve((_req, res) => {
    inFlight++;
    most = Math.max(most, inFlight);
    setTimeout(() => {
      inFlight--;
      res.end('ok');
    }, 10);
  });
  const p = open(s, { maxConnections: 2 });
  const all = await Promise.all(Array.from({ length: 9 }, () => send(p)));
  expect(all.every((o) => o.status === 200)).toBe(true);
  expect(s.sockets.length).toBe(2);
  expect(most).toBe(2);
  const bounded = open(s, { maxConnections: 1, maxPendingRequests: 2 });
  expect((await send(bounded)).status).toBe(200);
  const outcomes = await Promise.all(Array.from({ length: 4 }, () => send(bounded)));
  // One on the idle connection, two waiting, the fourth refused.
  expect(outcomes.map((o) => o.error?.code ?? o.status)).toEqual([200, 200, 200, 'SM_UPSTREAM_QUEUE_FULL']);
});

test('maxRequestsPerConnection: the last request says connection: close and the next opens a new connection', async () => {
  const s = await serve(echo);
  const p = open(s, { maxRequestsPerConnection: 2 });
  const a = json(await send(p));
  const b = json(await send(p));
  const c = json(await send(p));
  expect(a.raw).toEqual(expect.arrayContaining(['connection', 'keep-alive']));
  expect(b.raw).toEqual(expect.arrayContaining(['connection', 'close']));
  expect(a.port).toBe(b.port);
  expect(c.port).not.toBe(b.port);
  expect(s.sockets.length).toBe(2);
});

test('close() lets queued and in-flight requests finish, then closes; later requests are refused', async () => {
  const s = await serve((_req, res) => setTimeout(() => res.end('late'), 30));
  const p = open(s, { maxConnections: 1 });
  const inFlight = [send(p), send(p)];
  const closed = p.close();
  const after = await send(p);
  expect(after.error?.code).toBe('UND_ERR_CLOSED');
  expect((await Promise.all(inFlight)).map((o) => o.body.toString())).toEqual(['late', 'late']);
  await closed;
  expect(p.stats()).toEqual({ connections: 0, connecting: 0, idle: 0, pending: 0 });
  await until('the server to see the close', () => s.sockets.every((x) => x.destroyed || x.readableEnded));
});

test('destroy() fails what is queued and in flight with UND_ERR_DESTROYED', async () => {
  const s = await serve(() => undefined);
  const p = open(s, { maxConnections: 1 });
  const inFlight = send(p);
  const queued = send(p);
  await until('the request to arrive', () => s.sockets.length === 1);
  await p.destroy();
  expect((await inFlight).error?.code).toBe('UND_ERR_DESTROYED');
  expect((await queued).error?.code).toBe('UND_ERR_DESTROYED');
});

test('events: connect when a connection is up, disconnect when it goes, with undici\'s arguments', async () => {
  const s = await serve((_req, res) => res.end('x'));
  const p = open(s, { keepAliveTimeoutMs: 50 });
  const events: Array<[string, unknown[]]> = [];
  for (const name of ['connect', 'disconnect', 'connectionError'] as const) p.on(name, (...args: unknown[]) => events.push([name, args]));
  await send(p);
  await until('the idle connection to time out', () => events.some(([n]) => n === 'disconnect'));
  const [connect, disconnect] = events;
  expect(connect![0]).toBe('connect');
  expect(String(connect![1][0])).toBe(`${s.origin}/`);
  expect(connect![1][1]).toEqual([p]);
  expect(disconnect![1][1]).toEqual([p]);
  expect((disconnect![1][2] as { code: string }).code).toBe('UND_ERR_INFO');
  expect(s.sockets.length).toBe(1);
});
