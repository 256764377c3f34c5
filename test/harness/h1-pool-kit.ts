import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Http1Pool, type Http1PoolOptions } from '../../src/upstream/h1/pool';
import type { UpstreamDispatchOptions } from '../../src/upstream/h2-pool';
import { nativeHttp } from '../../src/util/native-http';

// What the HTTP/1.1 pool's tests share: a recording legacy handler, and real servers on
// 127.0.0.1 (node:http, or raw TCP/TLS answering bytes of the test's choosing) that count their
// connections.

export interface Outcome {
  status: number;
  headers: Buffer[];
  body: Buffer;
  trailers: Buffer[] | null;
  error: (Error & { code?: string }) | null;
  /** Handler calls in order: connect, headers, data, complete, error, upgrade. */
  calls: string[];
  upgradeSocket: import('node:stream').Duplex | null;
}

export interface RecordOptions {
  /** Decides back-pressure per chunk (false: pause); `resume` is the one onHeaders got. */
  onData?: (chunk: Buffer, resume: () => void) => boolean;
  onHeaders?: (status: number, resume: () => void) => boolean;
  onConnect?: (abort: (e?: Error) => void) => void;
}

/** A legacy undici handler that records everything, and the promise of how it ended. */
export function record(o: RecordOptions = {}) {
  const out: Outcome = { status: 0, headers: [], body: Buffer.alloc(0), trailers: null, error: null, calls: [], upgradeSocket: null };
  const chunks: Buffer[] = [];
  let resume: () => void = () => undefined;
  let settle: () => void = () => undefined;
  const done = new Promise<Outcome>((resolve) => (settle = () => resolve({ ...out, body: Buffer.concat(chunks) })));
  const handler = {
    abort: null as ((e?: Error) => void) | null,
    onConnect(abort: (e?: Error) => void) {
      out.calls.push('connect');
      handler.abort = abort;
      o.onConnect?.(abort);
    },
    onHeaders(status: number, raw: Buffer[], r: () => void) {
      out.calls.push('headers');
      out.status = status;
      out.headers = raw;
      resume = r;
      return o.onHeaders ? o.onHeaders(status, r) : true;
    },
    onData(chunk: Buffer) {
      out.calls.push('data');
      chunks.push(chunk);
      return o.onData ? o.onData(chunk, resume) : true;
    },
    // undici types raw trailers as strings; both pools hand Buffers.
    onComplete(trailers: string[] | null) {
      out.calls.push('complete');
      out.trailers = trailers as unknown as Buffer[] | null;
      settle();
    },
    onError(err: Error) {
      out.calls.push('error');
      out.error = err;
      settle();
    },
    onUpgrade(status: number, raw: Buffer[], socket: import('node:stream').Duplex) {
      out.calls.push('upgrade');
      out.status = status;
      out.headers = raw;
      out.upgradeSocket = socket;
      settle();
    },
  };
  return { handler, done, resume: () => resume() };
}

/** Header value by name (case-insensitive) from a raw list. */
export function header(raw: readonly Buffer[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toString('latin1').toLowerCase() === name) return raw[i + 1]!.toString('latin1');
  return undefined;
}

export function pool(origin: string, options: Http1PoolOptions = {}): Http1Pool {
  return new Http1Pool(origin, nativeHttp()!, options);
}

/** Dispatches and waits for the end. */
export function send(p: Http1Pool, opts: Partial<UpstreamDispatchOptions> = {}, o: RecordOptions = {}): Promise<Outcome> {
  const r = record(o);
  p.dispatch({ method: 'GET', path: '/', headers: {}, ...opts } as UpstreamDispatchOptions, r.handler);
  return r.done;
}

export interface TestServer {
  readonly port: number;
  readonly origin: string;
  /** Every connection accepted, in order. */
  readonly sockets: net.Socket[];
  close(): Promise<void>;
}

function track(server: net.Server, secure: boolean): Promise<TestServer> {
  const sockets: net.Socket[] = [];
  server.on(secure ? 'secureConnection' : 'connection', (s: net.Socket) => {
    sockets.push(s);
    s.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo;
    resolve({
      port,
      origin: `${secure ? 'https' : 'http'}://127.0.0.1:${port}`,
      sockets,
      close: () => {
        for (const s of sockets) s.destroy();
        return new Promise<void>((r) => server.close(() => r()));
      },
    });
  }));
}

/** A node:http server. */
export function httpServer(onRequest: http.RequestListener, options: http.ServerOptions = {}): Promise<TestServer & { server: http.Server }> {
  const server = http.createServer(options, onRequest);
  return track(server, false).then((t) => ({ ...t, server }));
}

/** A raw TCP server (TLS with `tlsOptions`) that hands each connection to `onSocket`. */
export function rawServer(onSocket: (s: net.Socket) => void, tlsOptions?: tls.TlsOptions): Promise<TestServer> {
  const server = tlsOptions ? tls.createServer(tlsOptions, onSocket) : net.createServer(onSocket);
  return track(server, tlsOptions !== undefined);
}

/**
 * Answers each request head it reads on a connection with the next of `answers` (raw bytes),
 * reading nothing of any body; `heads` collects the request heads as text.
 */
export function scriptedServer(answers: (n: number, head: string) => string | Buffer | null): Promise<TestServer & { heads: string[] }> {
  const heads: string[] = [];
  return rawServer((s) => {
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        heads.push(head);
        const answer = answers(heads.length, head);
        if (answer !== null && !s.destroyed) s.write(answer);
      }
    });
  }).then((t) => ({ ...t, heads }));
}

/** Polls `check` every 10 ms until it holds, for at most `ms`. */
export async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
