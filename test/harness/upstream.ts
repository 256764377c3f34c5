import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';

/** A request as an upstream saw it. */
export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  /** Raw header pairs, to check duplicates and order. */
  readonly rawHeaders: readonly string[];
  /** The body, complete once `complete` is true. */
  body: Buffer;
  complete: boolean;
  readonly receivedAt: number;
}

export interface UpstreamOptions {
  /** Body of the default 200 answer. */
  readonly name?: string;
  readonly status?: number;
  /** Wait this long after the request ends before answering. */
  readonly delayMs?: number;
  /** Never read the request body (the client's upload stalls once socket buffers fill). */
  readonly neverReadBody?: boolean;
  /** Destroy the connection after receiving this many body bytes (a reset mid-body). */
  readonly resetAfterBodyBytes?: number;
  /** Custom answer, given the recorded request once its body is complete. */
  readonly respond?: (req: RecordedRequest, res: http.ServerResponse) => void;
}

/** A real HTTP server on 127.0.0.1 that records what it receives; stopped by its own handle. */
export interface Upstream {
  readonly port: number;
  readonly requests: RecordedRequest[];
  /** Resolves when at least `n` requests have arrived (and, unless `headersOnly`, completed). */
  waitForRequests(n: number, timeoutMs?: number, headersOnly?: boolean): Promise<RecordedRequest[]>;
  close(): Promise<void>;
}

export async function startUpstream(o: UpstreamOptions = {}): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();
  const notify = (): void => waiters.forEach((w) => w());
  const server = http.createServer((req, res) => {
    const rec: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.alloc(0),
      complete: false,
      receivedAt: Date.now(),
    };
    requests.push(rec);
    notify();
    if (o.neverReadBody) return;
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      if (o.resetAfterBodyBytes !== undefined && received >= o.resetAfterBodyBytes) req.socket.destroy();
    });
    req.on('end', () => {
      rec.body = Buffer.concat(chunks);
      rec.complete = true;
      notify();
      const answer = (): void => {
        if (res.destroyed) return;
        if (o.respond) return o.respond(rec, res);
        const body = o.name ?? 'ok';
        res.writeHead(o.status ?? 200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (o.delayMs) {
        const t = setTimeout(() => {
          timers.delete(t);
          answer();
        }, o.delayMs);
        timers.add(t);
      }
      else answer();
    });
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    waitForRequests(n, timeoutMs = 5000, headersOnly = false) {
      const ready = (): boolean => requests.filter((r) => headersOnly || r.complete).length >= n;
      if (ready()) return Promise.resolve(requests.slice());
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!ready()) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(requests.slice());
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`expected ${n} requests within ${timeoutMs} ms, got ${requests.length}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A loopback port with nothing listening on it (connections are refused), or one to hand to a
 * listener that binds it later. It is picked below the kernel's ephemeral range (32768+): the
 * many servers other tests start on port 0 cannot land on it in between.
 */
export async function closedPort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 20000-32000 after 100 tries');
}

/** Waits `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
