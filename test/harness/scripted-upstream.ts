import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What a scripted upstream does with its n-th request (1-based). */
export type Step =
  /** Answer once the body is in, after `delayMs`. */
  | { readonly status: number; readonly body?: string; readonly headers?: Record<string, string>; readonly delayMs?: number }
  /** Destroy the connection after this many body bytes arrived (before answering). */
  | { readonly resetAfterBodyBytes: number }
  /** Send 200 headers and part of a body, then destroy the connection. */
  | { readonly resetMidResponse: true }
  /** Send 200 headers and part of a body, then nothing more (the connection stays open). */
  | { readonly stallMidResponse: true };

/** A request as the scripted upstream saw it. */
export interface SeenRequest {
  readonly n: number;
  readonly method: string;
  readonly headers: http.IncomingHttpHeaders;
  bytes: number;
  /** sha256 of the whole body, once it arrived ('' until then). */
  sha256: string;
}

export interface ScriptedUpstream {
  readonly port: number;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1 that answers its n-th request as `script(n, headers)` says:
 * the flaky upstream of retry tests (fails the first N times, resets mid-body, hangs).
 */
export async function startScriptedUpstream(script: (n: number, headers: http.IncomingHttpHeaders) => Step): Promise<ScriptedUpstream> {
  const seen: SeenRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const rec: SeenRequest = { n: seen.length + 1, method: req.method ?? '', headers: req.headers, bytes: 0, sha256: '' };
    seen.push(rec);
    const step = script(rec.n, req.headers);
    const hash = createHash('sha256');
    req.on('data', (c: Buffer) => {
      rec.bytes += c.length;
      hash.update(c);
      if ('resetAfterBodyBytes' in step && rec.bytes >= step.resetAfterBodyBytes) req.socket.destroy();
    });
    req.on('end', () => {
      rec.sha256 = hash.digest('hex');
      if ('resetAfterBodyBytes' in step) return;
      if ('resetMidResponse' in step || 'stallMidResponse' in step) {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
        res.write('partial');
        if ('resetMidResponse' in step) timers.add(setTimeout(() => res.socket?.destroy(), 50));
        return;
      }
      const answer = (): void => {
        if (res.destroyed) return;
        const body = step.body ?? `attempt ${rec.n}: ${step.status}`;
        res.writeHead(step.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...step.headers });
        res.end(body);
      };
      if (step.delayMs) {
        const t = setTimeout(answer, step.delayMs);
        timers.add(t);
      } else answer();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits until `cond` holds, polling every 10 ms, for at most `ms`. */
export async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
