import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import type { Pool } from 'undici';
import { classifyUpstreamError } from '../../src/upstream/errors';
import { type Http2PoolOptions, Http2Pool, type UpstreamDispatchOptions, type UpstreamPool } from '../../src/upstream/h2-pool';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';

// The HTTP/2 upstream pool against real node:http2 servers on 127.0.0.1, each started and
// stopped by the test that uses it.

// Compile-time: undici's Pool and ours both fit where the cluster manager keeps a host's pool.
const poolFits: Pool extends UpstreamPool ? true : never = true;
const h2Fits: Http2Pool extends UpstreamPool ? true : never = true;

type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.Http2Session) => void;

interface TestServer {
  readonly origin: string;
  /** Sessions the server accepted, in order, and their TCP sockets. */
  readonly sessions: http2.ServerHttp2Session[];
  readonly sockets: net.Socket[];
  close(): Promise<void>;
}

async function startServer(onStream: StreamHandler, options: http2.SecureServerOptions & { secure?: boolean } = {}): Promise<TestServer> {
  const server = options.secure ? http2.createSecureServer(options) : http2.createServer(options);
  const sessions: http2.ServerHttp2Session[] = [];
  const sockets: net.Socket[] = [];
  server.on('connection', (socket: net.Socket) => sockets.push(socket));
  server.on('session', (s) => {
    sessions.push(s);
    s.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    onStream(stream, headers, stream.session!);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    origin: `${options.secure ? 'https' : 'http'}://127.0.0.1:${port}`,
    sessions,
    sockets,
    close: () => {
      for (const s of sessions) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

interface Outcome {
  status: number;
  headers: Buffer[];
  body: Buffer;
  trailers: Buffer[] | null;
  error: Error | null;
  /** Handler calls in order: connect, headers, data, complete, error. */
  calls: string[];
}

/** A legacy undici handler that records everything; `onData` decides back-pressure per chunk. */
function record(opts: { onData?: (chunk: Buffer, resume: () => void) => boolean; onConnect?: (abort: (e?: Error) => void) => void } = {}) {
  const out: Outcome = { status: 0, headers: [], body: Buffer.alloc(0), trailers: null, error: null, calls: [] };
  const chunks: Buffer[] = [];
  let resume: () => void = () => undefined;
  let settle: () => void = () => undefined;
  const done = new Promise<Outcome>((resolve) => (settle = () => resolve({ ...out, body: Buffer.concat(chunks) })));
  const handler = {
    onConnect: (abort: (e?: Error) => void) => {
      out.calls.push('connect');
      opts.onConnect?.(abort);
    },
    onHeaders: (status: number, raw: Buffer[], r: () => void) => {
      out.calls.push('headers');
      out.status = status;
      out.headers = raw;
      resume = r;
      return true;
    },
    onData: (chunk: Buffer) => {
      out.calls.push('data');
      chunks.push(chunk);
      return opts.onData ? opts.onData(chunk, resume) : true;
    },
    onComplete: (trailers: Buffer[] | null) => {
      out.calls.push('complete');
      out.trailers = trailers;
      settle();
    },
    onError: (err: Error) => {
      out.calls.push('error');
      out.error = err;
      settle();
    },
  };
  return { handler: handler as never, done, chunks };
}

function send(pool: Http2Pool, opts: Partial<UpstreamDispatchOptions>, rec = record()): Promise<Outcome> {
  pool.dispatch({ path: '/', method: 'GET', headers: {}, body: null, ...opts }, rec.handler);
  return rec.done;
}

/** Raw header list → { name: [values] }. */
function headerMap(raw: Buffer[] | null): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; raw && i < raw.length; i += 2) (out[raw[i]!.toString()] ??= []).push(raw[i + 1]!.toString());
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `body` with a pool on `server`, then closes both. */
async function withPool(onStream: StreamHandler, body: (pool: Http2Pool, server: TestServer) => Promise<void>, options: Http2PoolOptions = {}, serverOptions: http2.ServerOptions = {}): Promise<void> {
  const server = await startServer(onStream, serverOptions);
  const pool = new Http2Pool(server.origin, { connectTimeoutMs: 2000, ...options });
  try {
    await body(pool, server);
  } finally {
    await pool.destroy();
    await server.close();
  }
}

const echo: StreamHandler = (stream, headers) => {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('trailers', (t) => (stream as unknown as { gotTrailers: unknown }).gotTrailers = t);
  stream.on('end', () => {
    const got = (stream as unknown as { gotTrailers?: http2.IncomingHttpHeaders }).gotTrailers;
    const windows = `${stream.session!.remoteSettings.initialWindowSize}/${stream.session!.state.remoteWindowSize}`;
    stream.respond({ ':status': 200, 'x-windows': windows, 'x-method': String(headers[':method']), 'x-authority': String(headers[':authority']), 'x-te': String(headers.te),
      'x-seen': Object.keys(headers).sort().join(','), 'x-req-trailer': String(got?.['x-sum'] ?? ''), 'set-cookie': ['a=1', 'b=2'] }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-len': String(Buffer.concat(chunks).length) }));
    stream.end(Buffer.concat(chunks));
  });
};

describe('Http2Pool', () => {
  let certs: TestCertificates;
  beforeAll(() => {
    expect(poolFits && h2Fits).toBe(true);
    certs = makeTestCertificates();
  });
  afterAll(() => certs.remove());

  test('GET and POST round trip: h1 headers become h2 ones, body and trailers come back', () =>
    withPool(echo, async (pool) => {
      const get = await send(pool, { headers: { Host: 'svc.local', connection: 'keep-alive, x-hop', 'x-hop': '1', 'keep-alive': 't=5', te: 'trailers', 'transfer-encoding': 'chunked', upgrade: 'h2c', 'x-kept': 'yes' } });
      expect(get.error).toBeNull();
      const h = headerMap(get.headers);
      expect(get.status).toBe(200);
      expect(h['x-method']).toEqual(['GET']);
      expect(h['x-authority']).toEqual(['svc.local']);
      expect(h['x-te']).toEqual(['trailers']);
      expect(h['x-windows']).toEqual(['268435456/268435456']); // Envoy's stream and connection windows
      expect(h['x-seen']![0]!.split(',')).toEqual([':authority', ':method', ':path', ':scheme', 'te', 'x-kept']);
      expect(h['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(get.headers.filter((_, i) => i % 2 === 0 && get.headers[i]!.toString().startsWith(':'))).toEqual([]);
      expect(get.calls).toEqual(['connect', 'headers', 'complete']);
      const post = await send(pool, { method: 'POST', body: 'hello h2', headers: { te: 'gzip' } });
      expect(post.body.toString()).toBe('hello h2');
      expect(headerMap(post.headers)['x-te']).toEqual(['undefined']);
      expect(headerMap(post.headers)['x-authority']).toEqual([new URL(pool.scheme + '://' + pool.authority).host]);
      expect(headerMap(post.trailers)).toEqual({ 'grpc-status': ['0'], 'x-len': ['8'] });
    }));

  test('request trailers reach the server after a streamed body; response trailers reach onComplete', () =>
    withPool(echo, async (pool) => {
      let calls = 0;
      const body = Readable.from([Buffer.from('ab'), Buffer.from('cd')]);
      const out = await send(pool, { method: 'POST', body, requestTrailers: () => (calls++, { 'x-sum': 'abcd-ok' }) });
      expect(out.body.toString()).toBe('abcd');
      expect(headerMap(out.headers)['x-req-trailer']).toEqual(['abcd-ok']);
      expect(headerMap(out.trailers)['grpc-status']).toEqual(['0']);
      expect(calls).toBe(1);
      // Trailers asked for but none given: the stream just ends.
      const none = await send(pool, { method: 'POST', body: Readable.from([Buffer.from('x')]), requestTrailers: () => null });
      expect(none.body.toString()).toBe('x');
      expect(headerMap(none.headers)['x-req-trailer']).toEqual(['']);
    }));

  test('a Trailers-Only response gives onHeaders then onComplete(null)', () =>
    withPool((s) => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'nope' }, { endStream: true }), async (pool) => {
      const out = await send(pool, { method: 'POST', body: Buffer.from([0, 0, 0, 0, 0]) });
      expect(out.calls).toEqual(['connect', 'headers', 'complete']);
      expect(headerMap(out.headers)['grpc-status']).toEqual(['5']);
      expect(out.trailers).toBeNull();
    }));

  test('parallel requests share one session', () => {
    let concurrent = 0;
    let peak = 0;
    return withPool((s) => {
      peak = Math.max(peak, ++concurrent);
      setTimeout(() => (concurrent--, s.respond({ ':status': 204 }, { endStream: true })), 30);
    }, async (pool, server) => {
      const all = await Promise.all(Array.from({ length: 50 }, () => send(pool, {})));
      expect(all.map((o) => o.status)).toEqual(Array(50).fill(204));
      expect(server.sessions).toHaveLength(1);
      expect(peak).toBe(50);
    });
  });

  test.each([
    [2, 2],
    [1, 1],
  ])('the peer allows 2 streams: with maxConnections %i, %i session(s) and the rest queue', (maxConnections, sessions) => {
    const perSession = new Map<unknown, number>();
    let peak = 0;
    return withPool((s, _h, session) => {
      perSession.set(session, (perSession.get(session) ?? 0) + 1);
      peak = Math.max(peak, ...perSession.values());
      setTimeout(() => (perSession.set(session, perSession.get(session)! - 1), s.respond({ ':status': 200 }, { endStream: true })), 40);
    }, async (pool, server) => {
      const all = await Promise.all(Array.from({ length: 8 }, () => send(pool, {})));
      expect(all.every((o) => o.status === 200)).toBe(true);
      expect(server.sessions).toHaveLength(sessions);
      expect(peak).toBe(2);
    }, { maxConnections }, { settings: { maxConcurrentStreams: 2 } });
  });

  test('the queue is bounded', () =>
    withPool((s) => setTimeout(() => s.respond({ ':status': 200 }, { endStream: true }), 50), async (pool) => {
      const all = Array.from({ length: 5 }, () => send(pool, {}));
      const out = await Promise.all(all);
      expect(out.filter((o) => o.status === 200)).toHaveLength(3);
      expect(out.filter((o) => (o.error as NodeJS.ErrnoException | null)?.code === 'SM_UPSTREAM_QUEUE_FULL')).toHaveLength(2);
    }, { maxConnections: 1, maxPendingRequests: 3 }, { settings: { maxConcurrentStreams: 1 } }));

  test.each([
    ['graceful close: GOAWAY naming every stream taken', (s: http2.ServerHttp2Stream, n: number) => n === 3 && s.session!.close()],
    ['GOAWAY naming only the first stream: the others were not processed', (s: http2.ServerHttp2Stream, n: number) => n === 1 && s.session!.goaway(0, s.id!)],
  ])('GOAWAY mid-traffic (%s): every request succeeds, later ones on a new session', (_name, goaway) => {
    let n = 0;
    return withPool((s) => {
      goaway(s, ++n);
      setTimeout(() => s.destroyed || s.respond({ ':status': 200 }, { endStream: true }), 30);
    }, async (pool, server) => {
      const first = await Promise.all(Array.from({ length: 6 }, () => send(pool, {})));
      expect(first.map((o) => o.error?.message ?? o.status)).toEqual(Array(6).fill(200));
      const later = await Promise.all(Array.from({ length: 3 }, () => send(pool, {})));
      expect(later.map((o) => o.status)).toEqual([200, 200, 200]);
      expect(server.sessions).toHaveLength(2);
    });
  });

  test('RST_STREAM from the server, or its connection dying mid-stream, is a reset', () => {
    let live: TestServer;
    return withPool((s, h) => {
      if (h[':path'] === '/rst') s.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else if (h[':path'] === '/proto') s.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      else {
        s.respond({ ':status': 200 });
        s.write('partial', () => setTimeout(() => live.sockets.at(-1)!.destroy(), 20));
      }
    }, async (pool, server) => {
      live = server;
      const rst = await send(pool, { path: '/rst' });
      expect(rst.calls).toEqual(['connect', 'error']);
      expect(classifyUpstreamError(rst.error!)).toBe('reset');
      expect(classifyUpstreamError((await send(pool, { path: '/proto' })).error!)).toBe('protocol_error');
      const died = await send(pool, { path: '/die' });
      expect(died.calls).toEqual(['connect', 'headers', 'data', 'error']);
      expect(classifyUpstreamError(died.error!)).toBe('reset');
      expect((await send(pool, { path: '/rst' })).calls).toEqual(['connect', 'error']); // reconnected
    });
  });

  test('connect refused, or a peer that never sends SETTINGS, is a connect failure', async () => {
    const accepted: net.Socket[] = [];
    const silent = net.createServer((socket) => accepted.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const refusedPort = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const refused = new Http2Pool(`http://127.0.0.1:${refusedPort}`, {});
    const mute = new Http2Pool(`http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { connectTimeoutMs: 150 });
    try {
      let connectionErrors = 0;
      refused.on('connectionError', () => connectionErrors++);
      const out = await send(refused, {});
      expect(out.calls).toEqual(['error']);
      expect((out.error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      expect(classifyUpstreamError(out.error!)).toBe('connect_failure');
      expect(connectionErrors).toBe(1);
      const timedOut = await send(mute, {});
      expect((timedOut.error as NodeJS.ErrnoException).code).toBe('UND_ERR_CONNECT_TIMEOUT');
      expect(classifyUpstreamError(timedOut.error!)).toBe('connect_failure');
    } finally {
      await refused.destroy();
      await mute.destroy();
      for (const socket of accepted) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('abort mid-response sends RST_STREAM CANCEL and the handler hears one onError only', () => {
    let serverClose!: (code: number) => void;
    const closedWith = new Promise<number>((r) => (serverClose = r));
    return withPool((s) => {
      s.on('close', () => serverClose(s.rstCode));
      s.respond({ ':status': 200 });
      const tick = setInterval(() => (s.destroyed ? clearInterval(tick) : s.write(Buffer.alloc(1024))), 5);
    }, async (pool) => {
      let abort!: (e?: Error) => void;
      const rec = record({ onConnect: (a) => (abort = a) });
      const outcome = send(pool, {}, rec);
      while (rec.chunks.length < 2) await sleep(5);
      const reason = new Error('client went away');
      abort(reason);
      abort(new Error('twice'));
      expect(await closedWith).toBe(http2.constants.NGHTTP2_CANCEL);
      const out = await outcome;
      await sleep(30);
      expect(out.error).toBe(reason);
      expect(rec.chunks.length).toBe(out.calls.filter((c) => c === 'data').length);
      expect(out.calls.filter((c) => c === 'error' || c === 'complete')).toEqual(['error']);
    });
  });

  test('back-pressure: after onData returns false no data comes until resume()', () =>
    withPool((s) => {
      s.respond({ ':status': 200 });
      for (let i = 0; i < 64; i++) s.write(Buffer.alloc(16 * 1024, i));
      s.end();
    }, async (pool) => {
      let paused = true;
      let resume!: () => void;
      const rec = record({ onData: (_c, r) => ((resume = r), !paused) });
      const outcome = send(pool, {}, rec);
      while (rec.chunks.length === 0) await sleep(5);
      await sleep(100);
      expect(rec.chunks).toHaveLength(1);
      paused = false;
      resume();
      const out = await outcome;
      expect(out.body.length).toBe(64 * 16 * 1024);
    }));

  test('a 5 MB body goes up and comes back byte-identical', () =>
    withPool(echo, async (pool) => {
      const data = randomBytes(5 * 1024 * 1024);
      const chunks = Array.from({ length: 80 }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
      const out = await send(pool, { method: 'POST', body: Readable.from(chunks) });
      expect(out.error).toBeNull();
      expect(createHash('sha256').update(out.body).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    }));

  test('TLS with ALPN h2: the right CA verifies, another CA fails to connect', async () => {
    const server = await startServer((s) => s.respond({ ':status': 200, 'x-alpn': String(s.session?.alpnProtocol) }, { endStream: true }), {
      secure: true, key: readFileSync(certs.serverKeyFile), cert: readFileSync(certs.serverCertFile),
    });
    const good = new Http2Pool(server.origin, { tls: { ca: certs.ca, servername: 'localhost' } });
    const bad = new Http2Pool(server.origin, { tls: { ca: readFileSync(certs.otherCaFile, 'utf8'), servername: 'localhost' } });
    const broken = new Http2Pool(server.origin, { tls: { cert: 'not a PEM', key: 'not a PEM' } });
    try {
      const ok = await send(good, {});
      expect(ok.status).toBe(200);
      expect(headerMap(ok.headers)['x-alpn']).toEqual(['h2']);
      const failed = await send(bad, {});
      expect(failed.calls).toEqual(['error']);
      expect(classifyUpstreamError(failed.error!)).toBe('connect_failure');
      // TLS options tls.connect rejects at once fail the request, not the process.
      const unusable = await send(broken, {});
      expect(classifyUpstreamError(unusable.error!)).toBe('connect_failure');
    } finally {
      await good.destroy();
      await bad.destroy();
      await broken.destroy();
      await server.close();
    }
  });

  test('an idle session closes after idleTimeoutMs; the next request reconnects', () =>
    withPool((s) => s.respond({ ':status': 200 }, { endStream: true }), async (pool, server) => {
      expect((await send(pool, {})).status).toBe(200);
      const serverSide = server.sessions[0]!;
      const closed = new Promise((r) => serverSide.once('close', r));
      await closed;
      expect(pool.stats().sessions).toBe(0);
      expect((await send(pool, {})).status).toBe(200);
      expect(server.sessions).toHaveLength(2);
    }, { idleTimeoutMs: 100 }));

  test('maxRequestsPerConnection retires a session; close() lets in-flight streams finish', () =>
    withPool((s) => setTimeout(() => s.respond({ ':status': 200 }, { endStream: true }), 40), async (pool, server) => {
      const all = Promise.all(Array.from({ length: 4 }, () => send(pool, {})));
      await sleep(10);
      const closing = pool.close();
      expect((await all).map((o) => o.status)).toEqual([200, 200, 200, 200]);
      await closing;
      expect(server.sessions).toHaveLength(2);
      expect((await send(pool, {})).error?.message).toMatch(/closed/);
    }, { maxRequestsPerConnection: 2 }));
});
