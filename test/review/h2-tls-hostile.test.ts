import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';
import { fetchText, startProxy, statValue, type TestProxy } from '../harness/proxy';
import { closedPort, sleep } from '../harness/upstream';

// A reviewer's attacks on the HTTP/2, gRPC and TLS paths: hostile clients (raw frames), hostile
// upstreams (huge headers, GOAWAY, 1xx, endless DATA) and hostile TLS peers. Every attack must
// leave the process alive, forward nothing malformed, and leave a normal client served.

jest.setTimeout(40_000);

type Json = Record<string, unknown>;

// ---- process-level: nothing may escape as an uncaught error -----------------------------------
const escaped: unknown[] = [];
const onEscape = (e: unknown): void => void escaped.push(e);
beforeAll(() => {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
});
afterAll(() => {
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
});

// ---- a raw HTTP/2 client: frames written by hand, HPACK literals without indexing ----------------
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const T = { DATA: 0, HEADERS: 1, RST: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

function hpack(headers: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [n, v] of headers) {
    const name = Buffer.from(n, 'latin1');
    const value = Buffer.from(v, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInt(name.length, 7, 0), name, hpackInt(value.length, 7, 0), value);
  }
  return Buffer.concat(parts);
}

/** HEADERS (+CONTINUATION when over 16 KiB) for one stream. */
function headersFrames(stream: number, headers: Array<[string, string]>, endStream: boolean): Buffer {
  const block = hpack(headers);
  const MAX = 16_384;
  const out: Buffer[] = [];
  for (let off = 0; off < block.length || off === 0; off += MAX) {
    const chunk = block.subarray(off, off + MAX);
    const last = off + MAX >= block.length;
    const first = off === 0;
    const flags = (last ? 0x4 : 0) | (first && endStream ? 0x1 : 0);
    out.push(frame(first ? T.HEADERS : T.CONTINUATION, flags, stream, chunk));
    if (block.length === 0) break;
  }
  return Buffer.concat(out);
}

interface RawFrame { type: number; flags: number; stream: number; payload: Buffer }

/** A raw h2c connection that records every frame the proxy sends. */
async function rawH2(port: number, settings: Buffer = Buffer.alloc(0)): Promise<{
  socket: net.Socket; frames: RawFrame[]; closed: Promise<void>; send(b: Buffer): void; waitFor(pred: (f: RawFrame) => boolean, ms?: number): Promise<RawFrame | null>;
}> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  socket.on('error', () => undefined);
  const frames: RawFrame[] = [];
  let buf = Buffer.alloc(0);
  const waiters = new Set<() => void>();
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const f = { type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
      buf = buf.subarray(9 + len);
      frames.push(f);
      // ACK the server's SETTINGS so it applies its own.
      if (f.type === T.SETTINGS && (f.flags & 1) === 0) socket.write(frame(T.SETTINGS, 1, 0));
    }
    waiters.forEach((w) => w());
  });
  const closed = new Promise<void>((r) => socket.once('close', () => {
    waiters.forEach((w) => w());
    r();
  }));
  socket.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, settings)]));
  const waitFor = (pred: (f: RawFrame) => boolean, ms = 3000): Promise<RawFrame | null> => new Promise((resolve) => {
    const check = (): void => {
      const hit = frames.find(pred);
      if (hit || socket.destroyed) {
        clearTimeout(t);
        waiters.delete(check);
        resolve(hit ?? null);
      }
    };
    const t = setTimeout(() => {
      waiters.delete(check);
      resolve(frames.find(pred) ?? null);
    }, ms);
    waiters.add(check);
    check();
  });
  return { socket, frames, closed, send: (b) => socket.write(b), waitFor };
}

const BASE: Array<[string, string]> = [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/attack']];

/** One h2 request through Node's client; resolves status, headers, body, trailers (or the error). */
function h2(url: string, headers: http2.OutgoingHttpHeaders, body?: Buffer, timeoutMs = 8000): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer; trailers: http2.IncomingHttpHeaders; error?: string }> {
  return new Promise((resolve) => {
    const session = http2.connect(url);
    session.on('error', () => undefined);
    const out = { status: 0, headers: {} as http2.IncomingHttpHeaders, body: Buffer.alloc(0), trailers: {} as http2.IncomingHttpHeaders, error: undefined as string | undefined };
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(t);
      out.body = Buffer.concat(chunks);
      session.destroy();
      resolve(out);
    };
    const t = setTimeout(() => {
      out.error = 'timeout';
      done();
    }, timeoutMs);
    const s = session.request(headers, { endStream: body === undefined });
    s.on('response', (h) => {
      out.headers = h;
      out.status = Number(h[':status']);
    });
    s.on('trailers', (tr) => (out.trailers = tr));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', done);
    s.on('error', (e: Error) => {
      out.error = e.message;
      done();
    });
    s.on('close', () => {
      if (out.error === undefined && s.rstCode) out.error = `rst ${s.rstCode}`;
      done();
    });
    if (body !== undefined) s.end(body);
  });
}

/** An h1 upstream that records every request head and can answer however a test says. */
async function recordingH1(answer?: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ port: number; seen: http.IncomingMessage[]; open: () => number; peak: () => number; close(): Promise<void> }> {
  const seen: http.IncomingMessage[] = [];
  let open = 0;
  let peak = 0;
  const server = http.createServer((req, res) => {
    seen.push(req);
    open++;
    peak = Math.max(peak, open);
    res.once('close', () => open--);
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (answer) return answer(req, res);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.on('clientError', (_e, s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port, seen, open: () => open, peak: () => peak,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** An h2c upstream with a handler per test. */
async function h2Upstream(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.ServerHttp2Session) => void, opts: http2.ServerOptions = {}): Promise<{ port: number; streams: () => number; close(): Promise<void> }> {
  let streams = 0;
  const server = http2.createServer(opts);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    streams++;
    stream.on('error', () => undefined);
    onStream(stream, headers, stream.session as http2.ServerHttp2Session);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port, streams: () => streams,
    close: () => new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    }),
  };
}

const H2_OPTIONS = {
  typed_extension_protocol_options: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
};

async function stillServes(p: TestProxy, path = '/health'): Promise<void> {
  const r = await h2(p.url, { ':path': path, ':authority': 'svc.local' });
  expect(r.error).toBeUndefined();
  expect(r.status).toBe(200);
}

// =================================================================================================
describe('hostile HTTP/2 clients (h2c)', () => {
  let up: Awaited<ReturnType<typeof recordingH1>>;
  let p: TestProxy;
  let slowUp: Awaited<ReturnType<typeof recordingH1>>;

  beforeAll(async () => {
    up = await recordingH1();
    // Answers only after 2 s: a request the client resets is still open here unless the proxy cancels it.
    slowUp = await recordingH1((req, res) => {
      req.resume();
      const t = setTimeout(() => res.end('slow'), 2000);
      res.once('close', () => clearTimeout(t));
    });
    p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/slow', 'slow'), route('/', 'up')]), {
        hcm: {
          stat_prefix: 'ingress_http', codec_type: 'AUTO',
          http2_protocol_options: { max_concurrent_streams: 5 },
          max_request_headers_kb: 16,
          common_http_protocol_options: { max_headers_count: 50, idle_timeout: '1s' },
        },
      })],
      clusters: [cluster('up', [up.port]), cluster('slow', [slowUp.port])],
    }));
  });

  afterAll(async () => {
    await p?.stop();
    await up?.close();
    await slowUp?.close();
    expect(escaped).toEqual([]);
  });

  const attacked = (path: string): boolean => up.seen.some((r) => r.url === path);

  test.each<[string, Array<[string, string]>]>([
    ['missing :path', [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local']]],
    ['unknown pseudo header', [...BASE.map(([n, v]): [string, string] => [n, n === ':path' ? '/bad-pseudo' : v]), [':foo', 'x']]],
    ['pseudo after a regular header', [[':method', 'GET'], [':scheme', 'http'], ['x-a', '1'], [':path', '/late-pseudo'], [':authority', 'svc.local']]],
    ['connection header', [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/conn'], ['connection', 'keep-alive']]],
    ['transfer-encoding', [[':method', 'POST'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/te-chunked'], ['transfer-encoding', 'chunked']]],
    ['te: gzip', [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/te-gzip'], ['te', 'gzip']]],
    ['upper-case name', [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/upper'], ['X-Upper', '1']]],
    ['upgrade: websocket on h2', [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/ws'], ['upgrade', 'websocket']]],
    ['extended CONNECT (:protocol) not offered', [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/xconnect']]],
  ])('%s: reset or 4xx, never forwarded', async (_name, headers) => {
    const c = await rawH2(p.port);
    c.send(headersFrames(1, headers, true));
    const answer = await c.waitFor((f) => f.stream === 1 && (f.type === T.RST || f.type === T.HEADERS) || f.type === T.GOAWAY);
    expect(answer).not.toBeNull();
    c.socket.destroy();
    await sleep(50);
    const path = headers.find(([n]) => n === ':path')?.[1];
    expect(up.seen.some((r) => r.headers['x-injected'] !== undefined)).toBe(false);
    const got = up.seen.find((r) => r.url === path);
    if (path) expect(got ? { url: got.url, xa: got.headers['x-a'] } : null).toBeNull();
  });

  test('CR LF in a header value: nothing injected upstream (nghttp2 drops the field; Envoy would reset the stream)', async () => {
    const c = await rawH2(p.port);
    c.send(headersFrames(1, [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', '/crlf'], ['x-a', 'a\r\nx-injected: 1']], true));
    await c.waitFor((f) => f.stream === 1 && (f.type === T.RST || f.type === T.HEADERS));
    c.socket.destroy();
    expect(up.seen.some((r) => r.headers['x-injected'] !== undefined || String(r.headers['x-a'] ?? '').includes('\n'))).toBe(false);
  });

  test('missing :authority and no host: a 400 (Envoy), not forwarded with an empty Host', async () => {
    const c = await rawH2(p.port);
    c.send(headersFrames(1, [[':method', 'GET'], [':scheme', 'http'], [':path', '/no-authority']], true));
    const answer = await c.waitFor((f) => f.stream === 1 && (f.type === T.RST || f.type === T.HEADERS));
    c.socket.destroy();
    expect(answer).not.toBeNull();
    expect(attacked('/no-authority')).toBe(false);
  });

  test('more streams than max_concurrent_streams (5): the extra ones refused, the upstream sees at most 5', async () => {
    const c = await rawH2(p.port);
    await c.waitFor((f) => f.type === T.SETTINGS && (f.flags & 1) === 1);
    const before = slowUp.seen.length;
    const burst: Buffer[] = [];
    // Bodies left open (no END_STREAM): each stream stays open.
    for (let i = 0; i < 20; i++) burst.push(headersFrames(1 + 2 * i, [[':method', 'POST'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', `/slow/mcs${i}`]], false));
    c.send(Buffer.concat(burst));
    await sleep(800);
    const refused = c.frames.filter((f) => f.type === T.RST && f.payload.readUInt32BE(0) === http2.constants.NGHTTP2_REFUSED_STREAM).length;
    const goaway = c.frames.some((f) => f.type === T.GOAWAY);
    const reached = slowUp.seen.length - before;
    c.socket.destroy();
    expect(reached).toBeLessThanOrEqual(5);
    expect(refused > 0 || goaway).toBe(true);
    await stillServes(p);
  });

  test('rapid reset (CVE-2023-44487): 2000 HEADERS+RST_STREAM; the upstream load stays bounded and a normal client is served', async () => {
    const c = await rawH2(p.port);
    await c.waitFor((f) => f.type === T.SETTINGS && (f.flags & 1) === 1);
    const before = slowUp.seen.length;
    let sid = 1;
    for (let round = 0; round < 20 && !c.socket.destroyed; round++) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 100; i++, sid += 2) {
        batch.push(headersFrames(sid, [[':method', 'GET'], [':scheme', 'http'], [':authority', 'svc.local'], [':path', `/slow/rr${sid}`]], true));
        const rst = Buffer.alloc(4);
        rst.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
        batch.push(frame(T.RST, 0, sid, rst));
      }
      c.send(Buffer.concat(batch));
      await sleep(5);
    }
    await sleep(500);
    const started = performance.now();
    await stillServes(p);
    const ms = performance.now() - started;
    const reached = slowUp.seen.length - before;
    const peak = slowUp.peak();
    const goaway = c.frames.some((f) => f.type === T.GOAWAY);
    c.socket.destroy();
    // eslint-disable-next-line no-console
    console.log('rapid reset', { reached, peak, goaway, ms });
    // The upstream answers after 2 s: a cancelled stream that is not cancelled upstream stacks up there.
    expect(ms).toBeLessThan(1000);
    // Streams the client reset are cancelled upstream, well before the upstream's 2 s answer.
    await sleep(300);
    // Streams reset in the same read as their HEADERS are closed before the connection manager
    // registers res.once('close'): nothing cancels their upstream request, downstream_rq_active leaks.
    expect({ openUpstream: slowUp.open(), rqActive: await statValue(p.adminUrl, 'http.ingress_http.downstream_rq_active') })
      .toEqual({ openUpstream: expect.any(Number), rqActive: 0 });
    expect(slowUp.open()).toBeLessThanOrEqual(5);
    // One connection limited to 5 concurrent streams fans out to hundreds of upstream requests.
    expect(peak).toBeLessThanOrEqual(100);
  });

  test('a header block over max_request_headers_kb (16): 431 or reset, never forwarded', async () => {
    const c = await rawH2(p.port);
    await c.waitFor((f) => f.type === T.SETTINGS && (f.flags & 1) === 1);
    c.send(headersFrames(1, [...BASE.map(([n, v]): [string, string] => [n, n === ':path' ? '/big-block' : v]), ['x-big', 'a'.repeat(40_000)]], true));
    const answer = await c.waitFor((f) => f.stream === 1 && (f.type === T.RST || f.type === T.HEADERS) || f.type === T.GOAWAY);
    c.socket.destroy();
    expect(answer).not.toBeNull();
    expect(attacked('/big-block')).toBe(false);
  });

  test('a 1 MB header block in CONTINUATION frames: the session ends, the process lives', async () => {
    const c = await rawH2(p.port);
    await c.waitFor((f) => f.type === T.SETTINGS && (f.flags & 1) === 1);
    const many: Array<[string, string]> = [];
    for (let i = 0; i < 1000; i++) many.push([`x-h${i}`, 'v'.repeat(1000)]);
    c.send(headersFrames(1, [...BASE.map(([n, v]): [string, string] => [n, n === ':path' ? '/huge-block' : v]), ...many], true));
    await Promise.race([c.closed, sleep(3000)]);
    c.socket.destroy();
    expect(attacked('/huge-block')).toBe(false);
    await stillServes(p);
  });

  test('more headers than max_headers_count (50): 431, never forwarded', async () => {
    const extra: http2.OutgoingHttpHeaders = {};
    for (let i = 0; i < 60; i++) extra[`x-n${i}`] = '1';
    const r = await h2(p.url, { ':path': '/many-headers', ':authority': 'svc.local', ...extra });
    expect(r.status === 431 || r.error !== undefined).toBe(true);
    expect(attacked('/many-headers')).toBe(false);
  });

  test('CRASH: a partial h2c preface then FIN (half-close) must not throw out of the listener', async () => {
    // readPrefix's 'end' handler unshifts the bytes it saw back onto an ended socket: Node throws
    // ERR_STREAM_UNSHIFT_AFTER_END_EVENT from inside the event handler, an uncaught exception.
    const before = escaped.length;
    for (let i = 0; i < 3; i++) {
      const s = net.connect(p.port, '127.0.0.1');
      s.on('error', () => undefined);
      await new Promise((r) => s.once('connect', r));
      s.end(PREFACE.subarray(0, 5));
      s.resume();
      await Promise.race([new Promise((r) => s.once('close', r)), sleep(1000)]);
      s.destroy();
    }
    await sleep(100);
    const thrown = escaped.splice(before).map((e) => String((e as Error).message ?? e));
    expect(thrown).toEqual([]);
    await stillServes(p);
  });

  test('a partial preface then silence: closed by idle_timeout (1 s), not held', async () => {
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write(PREFACE.subarray(0, 10));
    const started = performance.now();
    await Promise.race([new Promise((r) => s.once('close', r)), sleep(5000)]);
    const ms = performance.now() - started;
    s.destroy();
    expect(ms).toBeLessThan(4000);
  });

  test('a full preface then silence (no SETTINGS): closed by idle_timeout (1 s)', async () => {
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write(PREFACE);
    s.resume();
    const started = performance.now();
    await Promise.race([new Promise((r) => s.once('close', r)), sleep(20_000)]);
    const ms = performance.now() - started;
    s.destroy();
    expect(ms).toBeLessThan(4000);
  });

  test('300 connections sending one byte each: a normal client is still served quickly, and they are closed by idle_timeout', async () => {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 300; i++) {
      const s = net.connect(p.port, '127.0.0.1');
      s.on('error', () => undefined);
      s.once('connect', () => s.write(i % 2 === 0 ? 'P' : 'G'));
      sockets.push(s);
    }
    await sleep(300);
    const started = performance.now();
    await stillServes(p);
    expect(performance.now() - started).toBeLessThan(1000);
    await sleep(3500);
    const open = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    for (const s of sockets) s.destroy();
    // The 'G' half are HTTP/1.1 partial request lines: Envoy's idle_timeout closes them too.
    expect(open).toBe(0);
  });

  test('a SETTINGS / PING flood: the process lives and answers', async () => {
    const c = await rawH2(p.port);
    const burst: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) burst.push(frame(T.PING, 0, 0, Buffer.alloc(8, i & 0xff)));
    c.send(Buffer.concat(burst));
    await Promise.race([c.closed, sleep(1500)]);
    c.socket.destroy();
    await stillServes(p);
  });

  // Known gap (README): Node hands an Upgrade request's body to the upgrade path as raw bytes, so
  // sidemirror serves `Upgrade: h2c` as HTTP/1.1 only without a body; with one it is refused (403).
  test.skip('Upgrade: h2c with a body over HTTP/1.1: served as HTTP/1.1, body intact, no upgrade upstream', async () => {
    const body = 'x'.repeat(5000);
    const s2 = net.connect(p.port, '127.0.0.1');
    s2.on('error', () => undefined);
    await new Promise((r) => s2.once('connect', r));
    let reply = '';
    s2.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    s2.write(`POST /h2c-upgrade-body HTTP/1.1\r\nHost: svc.local\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await sleep(500);
    s2.destroy();
    expect(reply.slice(0, 12)).toBe('HTTP/1.1 200');
    const seen = up.seen.find((q) => q.url === '/h2c-upgrade-body');
    expect(seen).toBeDefined();
    expect(seen!.headers.upgrade).toBeUndefined();
    expect(seen!.headers['http2-settings']).toBeUndefined();
  });
});

// =================================================================================================
describe('hostile upstreams behind an h2 client', () => {
  let p: TestProxy;
  let ups: Array<{ close(): Promise<void> }> = [];
  let blackhole: net.Server;
  const holeSockets = new Set<net.Socket>();
  let h1Weird: Awaited<ReturnType<typeof recordingH1>>;

  beforeAll(async () => {
    const hugeHeaders = await h2Upstream((s) => {
      const h: http2.OutgoingHttpHeaders = { ':status': 200 };
      for (let i = 0; i < 100; i++) h[`x-big-${i}`] = 'v'.repeat(2000);
      try {
        s.respond(h);
        s.end('never');
      } catch {
        s.close();
      }
    }, { maxHeaderListPairs: 1000, settings: { maxHeaderListSize: 4 * 1024 * 1024 } });
    const hugeTrailers = await h2Upstream((s) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => {
        const t: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };
        for (let i = 0; i < 100; i++) t[`x-tr-${i}`] = 'v'.repeat(2000);
        try {
          s.sendTrailers(t);
        } catch {
          s.close();
        }
      });
      s.end('body');
    });
    const goawayMid = await h2Upstream((s, _h, session) => {
      s.respond({ ':status': 200 });
      s.write('partial');
      setTimeout(() => {
        session.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR);
        session.destroy();
      }, 50);
    });
    const goawayBefore = await h2Upstream((_s, _h, session) => {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, 0);
      setTimeout(() => session.destroy(), 20);
    });
    const early = await h2Upstream((s) => {
      s.additionalHeaders({ ':status': 103, link: '</a.css>; rel=preload' });
      s.additionalHeaders({ ':status': 100 });
      s.respond({ ':status': 200, 'x-final': '1' });
      s.end('after-1xx');
    });
    const grpcOk = await h2Upstream((s) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '7', 'grpc-message': 'denied' }));
      s.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    // A shadow target that never reads (its windows fill) and one that answers with endless DATA.
    const neverReads = await h2Upstream((s) => {
      s.pause();
    });
    const endless = await h2Upstream((s) => {
      s.respond({ ':status': 200 });
      const chunk = Buffer.alloc(64 * 1024, 1);
      let sent = 0;
      const pump = (): void => {
        while (sent < 200 * 1024 * 1024 && !s.destroyed) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        if (!s.destroyed) s.end();
      };
      pump();
    });
    const rawAnswers: Record<string, string> = {
      '/h1-conn-headers': 'HTTP/1.1 200 OK\r\nConnection: keep-alive, x-nominated\r\nKeep-Alive: timeout=5\r\nx-nominated: 1\r\nProxy-Connection: keep-alive\r\nContent-Length: 2\r\n\r\nok',
      '/h1-http2-settings': 'HTTP/1.1 200 OK\r\nHTTP2-Settings: AAAA\r\nContent-Length: 2\r\n\r\nok',
      '/h1-upgrade-header': 'HTTP/1.1 200 OK\r\nUpgrade: foo\r\nContent-Length: 2\r\n\r\nok',
      '/h1-te-header': 'HTTP/1.1 200 OK\r\nTE: gzip\r\nContent-Length: 2\r\n\r\nok',
      '/h1-bad-trailers': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nconnection: close\r\nhttp2-settings: AAAA\r\ngrpc-status: 0\r\n\r\n',
      '/h1-pseudo-trailer': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n:status: 500\r\ngrpc-status: 0\r\n\r\n',
    };
    const weird = net.createServer((sock) => {
      sock.on('error', () => undefined);
      let head = '';
      sock.on('data', (c: Buffer) => {
        head += c.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const path = head.split(' ')[1] ?? '';
        head = '';
        sock.write(rawAnswers[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      });
    });
    await new Promise<void>((r) => weird.listen(0, '127.0.0.1', () => r()));
    const weirdSockets = new Set<net.Socket>();
    weird.on('connection', (c) => {
      weirdSockets.add(c);
      c.once('close', () => weirdSockets.delete(c));
    });
    h1Weird = {
      port: (weird.address() as net.AddressInfo).port, seen: [], open: () => 0, peak: () => 0,
      close: () => new Promise<void>((r) => {
        for (const c of weirdSockets) c.destroy();
        weird.close(() => r());
      }),
    };
    ups = [hugeHeaders, hugeTrailers, goawayMid, goawayBefore, early, grpcOk, neverReads, endless, h1Weird];
    blackhole = net.createServer((s) => {
      holeSockets.add(s);
      s.on('error', () => undefined);
      s.pause();
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()));
    const fine = await recordingH1();
    ups.push(fine);
    const rc = routeConfig([
      route('/huge-headers', 'huge-headers'),
      route('/huge-trailers', 'huge-trailers'),
      route('/goaway-mid', 'goaway-mid'),
      route('/goaway-before', 'goaway-before'),
      route('/early', 'early'),
      route('/grpc', 'grpc'),
      route('/shadow-never-reads', 'fine', { request_mirror_policies: [{ cluster: 'never-reads' }] }),
      route('/shadow-endless', 'fine', { request_mirror_policies: [{ cluster: 'endless' }] }),
      route('/shadow-blackhole', 'fine', { request_mirror_policies: [{ cluster: 'blackhole' }] }),
      route('/h1-', 'weird'),
      route('/', 'fine'),
    ], {}, {});
    p = await startProxy(bootstrap({
      listeners: [listener(rc)],
      clusters: [
        cluster('huge-headers', [hugeHeaders.port], H2_OPTIONS),
        cluster('huge-trailers', [hugeTrailers.port], H2_OPTIONS),
        cluster('goaway-mid', [goawayMid.port], H2_OPTIONS),
        cluster('goaway-before', [goawayBefore.port], H2_OPTIONS),
        cluster('early', [early.port], H2_OPTIONS),
        cluster('grpc', [grpcOk.port], H2_OPTIONS),
        cluster('never-reads', [neverReads.port], H2_OPTIONS),
        cluster('endless', [endless.port], H2_OPTIONS),
        cluster('blackhole', [(blackhole.address() as net.AddressInfo).port], H2_OPTIONS),
        cluster('weird', [h1Weird.port]),
        cluster('fine', [fine.port]),
      ],
    }));
  });

  afterAll(async () => {
    await p?.stop();
    for (const u of ups) await u.close();
    for (const s of holeSockets) s.destroy();
    await new Promise((r) => blackhole?.close(r));
    expect(escaped).toEqual([]);
  });

  test('an h2 upstream sending 200 KB of response headers: a 5xx or reset, the proxy lives', async () => {
    const r = await h2(p.url, { ':path': '/huge-headers', ':authority': 'svc.local' });
    expect(r.status >= 500 || r.error !== undefined).toBe(true);
    await stillServes(p);
  });

  test('an h2 upstream sending 200 KB of trailers: the client gets a reset or the trailers, the proxy lives', async () => {
    const r = await h2(p.url, { ':path': '/huge-trailers', ':authority': 'svc.local', 'content-type': 'application/grpc', te: 'trailers' });
    expect(r.error === undefined ? r.status : 0).not.toBe(undefined);
    await stillServes(p);
  });

  // Skipped, doubtful: the proxy resets the half-sent response with res.destroy(), i.e. RST_STREAM(NO_ERROR)
  // (Envoy also resets with NO_ERROR); Node's client reads that as a clean end of a truncated 200 body.
  test.skip('GOAWAY + close mid-response: the client sees a reset (not a clean end), the proxy lives', async () => {
    const r = await h2(p.url, { ':path': '/goaway-mid', ':authority': 'svc.local' });
    expect({ status: r.status, body: r.body.toString(), error: r.error ?? 'clean end' }).toEqual(expect.objectContaining({ error: expect.not.stringMatching(/^clean end$/) }));
    await stillServes(p);
  });

  test('GOAWAY(last_stream_id 0) before answering: a 503 to the client, the proxy lives', async () => {
    const r = await h2(p.url, { ':path': '/goaway-before', ':authority': 'svc.local' });
    expect(r.status === 503 || r.error !== undefined).toBe(true);
    await stillServes(p);
  });

  test('1xx then 200 over h2: the client gets the 200 and its body', async () => {
    const r = await h2(p.url, { ':path': '/early', ':authority': 'svc.local' });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(200);
    expect(r.headers['x-final']).toBe('1');
    expect(r.body.toString()).toBe('after-1xx');
  });

  test('gRPC trailers (grpc-status 7) arrive intact', async () => {
    const r = await h2(p.url, { ':path': '/grpc', ':authority': 'svc.local', ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
    expect(r.status).toBe(200);
    expect(r.trailers['grpc-status']).toBe('7');
    expect(r.trailers['grpc-message']).toBe('denied');
  });

  test.each([
    ['/h1-conn-headers', ['connection', 'keep-alive', 'x-nominated', 'proxy-connection']],
    ['/h1-http2-settings', ['http2-settings']],
    ['/h1-upgrade-header', ['upgrade']],
    ['/h1-te-header', ['te']],
  ])('an h1 upstream answering %s to an h2 client: 200 and body, the connection-specific headers gone', async (path, gone) => {
    const r = await h2(p.url, { ':path': path, ':authority': 'svc.local' }, undefined, 3000);
    expect({ status: r.status, error: r.error, body: r.body.toString() }).toEqual({ status: 200, error: undefined, body: 'ok' });
    for (const h of gone) expect(r.headers[h]).toBeUndefined();
  });

  test('an h1 upstream with a pseudo-header trailer: a 503 (protocol error), the proxy lives', async () => {
    const r = await h2(p.url, { ':path': '/h1-pseudo-trailer', ':authority': 'svc.local', te: 'trailers' }, undefined, 3000);
    expect(r.status === 503 || r.status === 200 || r.error !== undefined).toBe(true);
    await stillServes(p);
  });

  test.each(['/h1-bad-trailers'])('an h1 upstream with hostile trailers (%s) to an h2 client: body and grpc-status through', async (path) => {
    const r = await h2(p.url, { ':path': path, ':authority': 'svc.local', te: 'trailers' }, undefined, 3000);
    expect({ status: r.status, error: r.error, body: r.body.toString(), grpc: r.trailers['grpc-status'] }).toEqual({ status: 200, error: undefined, body: 'ok', grpc: '0' });
    await stillServes(p);
  });

  /**
   * A primary held back by its shadow would wait for the route timeout (Envoy's default, 15 s):
   * 8 s stays well below that and well above what a loaded 2-core runner takes for 40 × 1 MB.
   */
  const HELD_BACK_MS = 8000;

  async function shadowFlood(path: string): Promise<{ rssGrowthMb: number; allOk: boolean; maxMs: number }> {
    const body = Buffer.alloc(1024 * 1024, 3);
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let allOk = true;
    let maxMs = 0;
    for (let round = 0; round < 4; round++) {
      const batch = await Promise.all(Array.from({ length: 10 }, async () => {
        const started = performance.now();
        const r = await h2(p.url, { ':path': path, ':method': 'POST', ':authority': 'svc.local' }, body);
        return { ok: r.status === 200 && r.error === undefined, ms: performance.now() - started };
      }));
      for (const b of batch) {
        allOk &&= b.ok;
        maxMs = Math.max(maxMs, b.ms);
      }
    }
    await sleep(300);
    return { rssGrowthMb: (process.memoryUsage().rss - rss0) / (1024 * 1024), allOk, maxMs };
  }

  test('a shadow over h2 to a server that never reads: 40 × 1 MB primaries all served fast, memory bounded', async () => {
    const r = await shadowFlood('/shadow-never-reads');
    expect(r.allOk).toBe(true);
    expect(r.maxMs).toBeLessThan(HELD_BACK_MS);
    expect(r.rssGrowthMb).toBeLessThan(200);
  });

  test('a shadow over h2 whose response is endless DATA: primaries unaffected, memory bounded', async () => {
    const r = await shadowFlood('/shadow-endless');
    expect(r.allOk).toBe(true);
    expect(r.maxMs).toBeLessThan(HELD_BACK_MS);
    expect(r.rssGrowthMb).toBeLessThan(200);
  });

  test('a shadow over h2 to a TCP black hole (no SETTINGS ever): primaries unaffected', async () => {
    const r = await shadowFlood('/shadow-blackhole');
    expect(r.allOk).toBe(true);
    expect(r.maxMs).toBeLessThan(HELD_BACK_MS);
  });
});

// =================================================================================================
describe('hostile TLS peers', () => {
  let certs: TestCertificates;
  let p: TestProxy;
  let fine: Awaited<ReturnType<typeof recordingH1>>;
  let port: number;

  beforeAll(async () => {
    certs = makeTestCertificates();
    fine = await recordingH1();
    port = await closedPort();
    const tlsSocket: Json = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
        common_tls_context: {
          tls_certificates: [{ certificate_chain: { filename: certs.serverCertFile }, private_key: { filename: certs.serverKeyFile } }],
          alpn_protocols: ['h2', 'http/1.1'],
        },
      },
    };
    const l = listener(routeConfig([route('/', 'fine')]), { name: 'tls', port });
    const chain = (l.filter_chains as Json[])[0]!;
    p = await startProxy(bootstrap({
      listeners: [{
        ...l,
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
        filter_chains: [{ ...chain, filter_chain_match: { transport_protocol: 'tls' }, transport_socket: tlsSocket }, { ...chain }],
      }],
      clusters: [cluster('fine', [fine.port])],
    }));
  });

  afterAll(async () => {
    await p?.stop();
    await fine?.close();
    certs?.remove();
    expect(escaped).toEqual([]);
  });

  function tlsGet(): Promise<number> {
    return new Promise((resolve) => {
      const s = http2.connect(`https://localhost:${port}`, { ca: readFileSync(certs.caFile) });
      s.on('error', () => resolve(-1));
      const r = s.request({ ':path': '/ok' });
      r.on('response', (h) => {
        resolve(Number(h[':status']));
        s.destroy();
      });
      r.on('error', () => resolve(-2));
      r.end();
    });
  }

  /** A real ClientHello, captured from Node's own TLS client. */
  async function captureClientHello(servername: string): Promise<Buffer> {
    const cap = net.createServer();
    await new Promise<void>((r) => cap.listen(0, '127.0.0.1', () => r()));
    const got = new Promise<Buffer>((resolve) => cap.once('connection', (s) => s.once('data', (d: Buffer) => {
      resolve(d);
      s.destroy();
    })));
    const c = tls.connect({ port: (cap.address() as net.AddressInfo).port, host: '127.0.0.1', servername, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    c.on('error', () => undefined);
    const hello = await got;
    c.destroy();
    cap.close();
    return hello;
  }

  test('a ClientHello followed by garbage: the connection closes, the proxy serves TLS after', async () => {
    const hello = await captureClientHello('localhost');
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.resume();
    s.write(Buffer.concat([hello, Buffer.alloc(4096, 0xee)]));
    await Promise.race([new Promise((r) => s.once('close', r)), sleep(3000)]);
    const closed = s.destroyed || s.readyState !== 'open';
    s.destroy();
    expect(closed).toBe(true);
    expect(await tlsGet()).toBe(200);
  });

  test('CRASH: part of a ClientHello then FIN (tls_inspector) must not throw out of the listener', async () => {
    const hello = await captureClientHello('localhost');
    const before = escaped.length;
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.resume();
    s.end(hello.subarray(0, 20));
    await Promise.race([new Promise((r) => s.once('close', r)), sleep(1000)]);
    s.destroy();
    await sleep(100);
    const thrown = escaped.splice(before).map((e) => String((e as Error).message ?? e));
    expect(thrown).toEqual([]);
    expect(await tlsGet()).toBe(200);
  });

  test('a ClientHello over 16 KiB (tls_inspector): closed, not crashed', async () => {
    // A record header announcing 20 KiB and a handshake header announcing as much.
    const body = Buffer.alloc(20_000, 0);
    body[0] = 1; // client_hello
    body.writeUIntBE(body.length - 4, 1, 3);
    const rec = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]), body.subarray(0, 0x4000), Buffer.from([0x16, 0x03, 0x01]), Buffer.from([0x10, 0x00]), body.subarray(0x4000)]);
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.resume();
    s.write(rec);
    await Promise.race([new Promise((r) => s.once('close', r)), sleep(3000)]);
    const closed = s.destroyed || s.readyState !== 'open';
    s.destroy();
    expect(closed).toBe(true);
    expect(await tlsGet()).toBe(200);
  });

  test('200 half-open TLS handshakes (ClientHello, then nothing): a real client is still served', async () => {
    const hello = await captureClientHello('localhost');
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.once('connect', () => s.write(i % 2 ? hello : hello.subarray(0, 20)));
      sockets.push(s);
    }
    await sleep(500);
    const started = performance.now();
    expect(await tlsGet()).toBe(200);
    expect(performance.now() - started).toBeLessThan(2000);
    for (const s of sockets) s.resetAndDestroy();
    await sleep(100);
  });

  test('a client that never finishes the handshake is closed within the 15 s handshake bound', async () => {
    const hello = await captureClientHello('localhost');
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write(hello);
    s.resume();
    const started = performance.now();
    await Promise.race([new Promise((r) => s.once('close', r)), sleep(20_000)]);
    const ms = performance.now() - started;
    s.resetAndDestroy();
    expect(ms).toBeLessThan(17_000);
  }, 25_000);

  test('plaintext h2c with rapid reset on the TLS listener\'s raw_buffer chain: the process lives', async () => {
    const c = await rawH2(port);
    const batch: Buffer[] = [];
    for (let sid = 1; sid < 400; sid += 2) {
      batch.push(headersFrames(sid, BASE, true));
      const rst = Buffer.alloc(4);
      rst.writeUInt32BE(8);
      batch.push(frame(T.RST, 0, sid, rst));
    }
    c.send(Buffer.concat(batch));
    await sleep(300);
    c.socket.destroy();
    expect(await tlsGet()).toBe(200);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_total')).toBeGreaterThan(0);
  });
});
