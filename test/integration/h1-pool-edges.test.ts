import { readFileSync } from 'node:fs';
import type * as net from 'node:net';
import { Readable } from 'node:stream';
import type * as tls from 'node:tls';
import { classifyUpstreamError } from '../../src/upstream/errors';
import type { Http1Pool } from '../../src/upstream/h1/pool';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';
import { type TestServer, header, httpServer, pool, rawServer, record, scriptedServer, send, until } from '../harness/h1-pool-kit';
import { closedPort } from '../harness/upstream';

// The HTTP/1.1 pool against upstreams that misbehave or close: raw servers on 127.0.0.1 that
// answer bytes of the test's choosing. What each request hears, and whether its connection is
// reused, as undici's Pool does it.

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function keep<T extends TestServer>(s: T): T {
  cleanups.push(() => s.close());
  return s;
}

function open(s: { origin: string }, options: Parameters<typeof pool>[1] = {}): Http1Pool {
  const p = pool(s.origin, options);
  cleanups.push(() => p.destroy());
  return p;
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
const nextTurn = (): Promise<unknown> => new Promise((r) => setImmediate(r));

test('an early response (before the upload was all sent): it completes, the body is let go, the connection is not reused', async () => {
  const s = keep(await scriptedServer(() => OK));
  const p = open(s);
  const body = new Readable({ read() {} });
  body.push(Buffer.alloc(1000, 1));
  const got = await send(p, { method: 'POST', headers: { 'content-length': String(1 << 20) }, body });
  expect(got.error).toBeNull();
  expect(got.body.toString()).toBe('ok');
  expect(body.destroyed).toBe(true);
  await nextTurn();
  expect((await send(p)).status).toBe(200);
  expect(s.sockets.length).toBe(2);
});

test('the server closes an idle connection: the pool drops it and the next request opens another', async () => {
  const s = keep(await scriptedServer((_n) => OK));
  const p = open(s);
  expect((await send(p)).status).toBe(200);
  s.sockets[0]!.end();
  await until('the pool to see the close', () => p.stats().connections === 0);
  expect((await send(p)).status).toBe(200);
  expect(s.sockets.length).toBe(2);
});

test('connection: close and HTTP/1.0 answers are not reused; HTTP/1.0 with keep-alive is', async () => {
  const answers = ['HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok', 'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok',
    'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok', OK];
  let i = 0;
  const s = keep(await rawServer((sock) => sock.on('data', () => sock.write(answers[i++] ?? OK))));
  const p = open(s);
  for (let n = 0; n < 4; n++) {
    expect((await send(p)).body.toString()).toBe('ok');
    await nextTurn();
  }
  // close → new, 1.0 → new, 1.0 keep-alive → kept for the fourth.
  expect(s.sockets.length).toBe(3);
});

test('a close-delimited body completes at the close', async () => {
  const s = keep(await rawServer((sock) => sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it'))));
  const got = await send(open(s));
  expect(got.error).toBeNull();
  expect(got.body.toString()).toBe('all of it');
});

test('malformed responses fail as protocol errors, and their connection is not reused', async () => {
  const bad = ['HTTQ/1.1 200 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nx',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', 'HTTP/1.1 200 OK\r\nbad header\r\n\r\n'];
  for (const answer of bad) {
    const s = keep(await scriptedServer((n) => (n === 1 ? answer : OK)));
    const p = open(s);
    const got = await send(p);
    expect({ answer, code: got.error?.code?.startsWith('HPE_'), name: got.error?.name }).toEqual({ answer, code: true, name: 'HTTPParserError' });
    expect(classifyUpstreamError(got.error!)).toBe('protocol_error');
    expect((await send(p)).status).toBe(200);
    expect(s.sockets.length).toBe(2);
  }
});

test('a body shorter than its content-length: a reset, worded as undici words it', async () => {
  // Keep-alive: the upstream just went away mid-body.
  const s = keep(await rawServer((sock) => sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'))));
  const got = await send(open(s));
  expect(got.calls).toEqual(['connect', 'headers', 'data', 'error']);
  expect(got.error?.code).toBe('UND_ERR_SOCKET');
  expect(classifyUpstreamError(got.error!)).toBe('reset');
  // connection: close: the close ends a body that declared more.
  const c = keep(await rawServer((sock) => sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 10\r\n\r\nabc'))));
  const closed = await send(open(c));
  expect(closed.error?.code).toBe('UND_ERR_RES_CONTENT_LENGTH_MISMATCH');
  expect(classifyUpstreamError(closed.error!)).toBe('reset');
});

test('bytes past the content-length, or a response nobody asked for, end the connection (never the next request\'s answer)', async () => {
  const extra = [`${OK}EXTRA`, `${OK}HTTP/1.1 500 Smuggled\r\ncontent-length: 0\r\n\r\n`, `${OK}HTTP/1.1 50`];
  const s = keep(await scriptedServer((n) => extra[n - 1] ?? OK));
  const p = open(s);
  for (let i = 0; i < extra.length; i++) {
    expect((await send(p)).body.toString()).toBe('ok');
    await until('the connection to go', () => p.stats().connections === 0);
  }
  expect((await send(p)).status).toBe(200);
  expect(s.sockets.length).toBe(4);
});

test('HEAD: headers with a length but no body; the connection is closed after, as undici does', async () => {
  const s = keep(await scriptedServer(() => 'HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n'));
  const p = open(s);
  const got = await send(p, { method: 'HEAD' });
  expect(got.calls).toEqual(['connect', 'headers', 'complete']);
  expect(header(got.headers, 'content-length')).toBe('1234');
  expect(s.heads[0]).toMatch(/^HEAD \/ HTTP\/1\.1\r\n.*connection: close\r\n/s);
});

test('204 and 304 have no body; informational responses (100, 103) are skipped', async () => {
  const s = keep(await scriptedServer((n) => [
    'HTTP/1.1 204 No Content\r\n\r\n',
    'HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody',
  ][n - 1] ?? OK));
  const p = open(s);
  const none = await send(p);
  expect([none.status, none.calls]).toEqual([204, ['connect', 'headers', 'complete']]);
  await nextTurn();
  const notModified = await send(p);
  expect([notModified.status, notModified.calls]).toEqual([304, ['connect', 'headers', 'complete']]);
  await nextTurn();
  const final = await send(p);
  expect([final.status, final.body.toString(), final.calls]).toEqual([200, 'body', ['connect', 'headers', 'data', 'complete']]);
  expect(s.sockets.length).toBe(1);
});

test('the upstream\'s keep-alive timeout, less undici\'s 2 s margin, closes the idle connection; under the margin it is not reused', async () => {
  const s = keep(await scriptedServer((n) => `HTTP/1.1 200 OK\r\nkeep-alive: timeout=${n === 1 ? 1 : 3}\r\ncontent-length: 0\r\n\r\n`));
  const p = open(s, { keepAliveTimeoutMs: 60_000 });
  await send(p);
  await until('the first connection to close', () => p.stats().connections === 0);
  const started = Date.now();
  await send(p);
  expect(s.sockets.length).toBe(2);
  await until('the idle timeout', () => p.stats().connections === 0, 10_000);
  // 3 s less the margin: never sooner than 1 s (later only on a loaded machine).
  expect(Date.now() - started).toBeGreaterThanOrEqual(900);
});

test('abort: in onConnect nothing is sent and the connection serves the next; after the headers the connection is closed', async () => {
  const s = keep(await scriptedServer(() => 'HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npart'));
  const p = open(s);
  const early = record({ onConnect: (abort) => abort(new Error('changed my mind')) });
  p.dispatch({ method: 'GET', path: '/', headers: {} }, early.handler);
  const e = await early.done;
  expect(e.calls).toEqual(['connect', 'error']);
  expect(e.error?.message).toBe('changed my mind');
  const late = record({ onData: () => {
    late.handler.abort!();
    return true;
  } });
  p.dispatch({ method: 'GET', path: '/', headers: {} }, late.handler);
  const l = await late.done;
  expect(l.calls).toEqual(['connect', 'headers', 'data', 'error']);
  expect(l.error?.code).toBe('UND_ERR_ABORTED');
  await until('the connection to close', () => p.stats().connections === 0);
  // The aborted-early request wrote nothing.
  expect(s.heads.length).toBe(1);
});

test('a handler that throws aborts its request with what it threw; a request body that fails fails its request', async () => {
  const s = keep(await httpServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('x'.repeat(100)));
  }));
  const p = open(s);
  const r = record({ onData: () => {
    throw new Error('handler bug');
  } });
  p.dispatch({ method: 'GET', path: '/', headers: {} }, r.handler);
  expect((await r.done).error?.message).toBe('handler bug');
  const body = new Readable({ read() {} });
  body.push('start');
  setTimeout(() => body.destroy(new Error('client went away')), 20);
  const failed = await send(p, { method: 'POST', body });
  expect(failed.error?.message).toBe('client went away');
  expect((await send(p)).status).toBe(200);
});

test('connect refused, and a connect (TLS handshake) that never finishes', async () => {
  const refusedPort = await closedPort();
  const p = open({ origin: `http://127.0.0.1:${refusedPort}` });
  const errors: Error[] = [];
  p.on('connectionError', (_o: unknown, _t: unknown, err: Error) => errors.push(err));
  const refused = await send(p);
  expect(refused.calls).toEqual(['error']);
  expect(refused.error?.code).toBe('ECONNREFUSED');
  expect(classifyUpstreamError(refused.error!)).toBe('connect_failure');
  expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ECONNREFUSED']);
  // A TCP server that never answers the TLS handshake.
  const silent = keep(await rawServer(() => undefined));
  const t = open({ origin: `https://127.0.0.1:${silent.port}` }, { connectTimeoutMs: 200, tls: () => ({ rejectUnauthorized: false }) });
  const timedOut = await send(t);
  expect(timedOut.error?.code).toBe('UND_ERR_CONNECT_TIMEOUT');
  expect(classifyUpstreamError(timedOut.error!)).toBe('connect_failure');
});

describe('TLS', () => {
  let certs: TestCertificates;
  beforeAll(() => {
    certs = makeTestCertificates();
  });
  afterAll(() => certs.remove());

  async function tlsServer(): Promise<TestServer & { names: Array<string | false> }> {
    const names: Array<string | false> = [];
    const options: tls.TlsOptions = { key: readFileSync(certs.serverKeyFile), cert: readFileSync(certs.serverCertFile) };
    const s = keep(await rawServer((sock) => {
      names.push((sock as tls.TLSSocket).servername ?? false);
      sock.on('data', () => sock.write(OK));
    }, options));
    return Object.assign(s, { names });
  }

  test('verified against the CA; SNI only when configured, never from the Host header', async () => {
    const s = await tlsServer();
    const plain = open(s, { tls: () => ({ ca: certs.ca }) });
    expect((await send(plain, { headers: { host: 'other.example' } })).body.toString()).toBe('ok');
    const named = open(s, { tls: () => ({ ca: certs.ca, servername: 'localhost' }) });
    expect((await send(named, { headers: { host: 'other.example' } })).body.toString()).toBe('ok');
    expect(s.names).toEqual([false, 'localhost']);
  });

  test('options are read at each connect; none yet is ERR_TLS_CONTEXT_NOT_READY; a bad CA fails the handshake', async () => {
    const s = await tlsServer();
    let current: tls.ConnectionOptions | null = null;
    const p = open(s, { tls: () => current });
    const notReady = await send(p);
    expect(notReady.error?.code).toBe('ERR_TLS_CONTEXT_NOT_READY');
    current = { ca: readFileSync(certs.otherCaFile, 'utf8') };
    const wrongCa = await send(p);
    expect(wrongCa.error).not.toBeNull();
    current = { ca: certs.ca };
    expect((await send(p)).status).toBe(200);
  });
});

describe.each(['consume', 'data'] as const)('upgrade, reading with %s', (read) => {
  test('a 101 hands the socket over, with what followed the head, and the connection leaves the pool', async () => {
    const s = keep(await rawServer((sock) => sock.once('data', () => {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\nhello ');
      sock.on('data', (d) => sock.write(d));
    })));
    const p = open(s, { read });
    const disconnects: Error[] = [];
    p.on('disconnect', (_o: unknown, _t: unknown, err: Error) => disconnects.push(err));
    const got = await send(p, { upgrade: 'echo' });
    expect(got.calls).toEqual(['connect', 'upgrade']);
    expect(got.status).toBe(101);
    expect(header(got.headers, 'upgrade')).toBe('echo');
    const socket = got.upgradeSocket as net.Socket;
    const seen: Buffer[] = [];
    socket.on('data', (d: Buffer) => seen.push(d));
    socket.write('world');
    await until('the echo', () => Buffer.concat(seen).toString() === 'hello world');
    socket.destroy();
    expect(disconnects.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['UND_ERR_INFO']);
    expect(p.stats().connections).toBe(0);
  });

  test('a refused upgrade is a plain response and its connection is not reused; a 101 nobody asked for is a bad upgrade', async () => {
    const s = keep(await scriptedServer((n) => (n === 1 ? 'HTTP/1.1 426 Upgrade Required\r\ncontent-length: 2\r\n\r\nno' : 'HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n')));
    const p = open(s, { read });
    const refused = await send(p, { upgrade: 'websocket' });
    expect([refused.status, refused.body.toString(), refused.calls]).toEqual([426, 'no', ['connect', 'headers', 'data', 'complete']]);
    expect(s.heads[0]).toMatch(/\r\nconnection: upgrade\r\nupgrade: websocket\r\n/);
    const unasked = await send(p);
    expect(unasked.error?.code).toBe('UND_ERR_SOCKET');
    expect(s.sockets.length).toBe(2);
  });
});

test('stringHeaders: handlers get the parser\'s strings for header and trailer lines', async () => {
  const s = keep(await scriptedServer(() => 'HTTP/1.1 200 OK\r\nX-One: 1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-t: v\r\n\r\n'));
  const got = await send(open(s, { stringHeaders: true }));
  expect(got.headers).toEqual(['X-One', '1', 'transfer-encoding', 'chunked']);
  expect(got.trailers).toEqual(['x-t', 'v']);
  expect(got.body.toString()).toBe('ok');
});
