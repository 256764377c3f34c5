import * as net from 'node:net';
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { request } from 'undici';
import type { CompareReport, SamplesReport } from '../../src/compare/report-types';
import { cluster } from '../harness/bootstrap';
import { type Json, extBootstrap, extRoute } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type RecordedRequest, type Upstream, startUpstream } from '../harness/upstream';

// The review's rig for comparing policies with hostile upstreams: real servers on 127.0.0.1 (an
// http one that records, or a raw socket one that writes whatever bytes a test wants), a proxy in
// this process whose route goes to `primary` and whose policy `cand` mirrors to `candidate` (and
// `reference`), comparing. Everything started is stopped by `closeAll`, by its own handle.

export type Respond = (req: RecordedRequest, res: http.ServerResponse) => void;

/** A raw server: `onRequest` is called with the socket once per request head received (bodies are not expected). */
export type RawRespond = (socket: net.Socket, head: string) => void;

export interface RawServer {
  readonly port: number;
  /** Request heads received. */
  readonly heads: string[];
  close(): Promise<void>;
}

export type Leg = { readonly http: Respond } | { readonly raw: RawRespond };

const cleanups: Array<() => Promise<void>> = [];

export async function closeAll(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
}

export async function rawServer(onRequest: RawRespond): Promise<RawServer> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        heads.push(head);
        onRequest(s, head);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const handle: RawServer = {
    port: (server.address() as AddressInfo).port,
    heads,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(() => handle.close());
  return handle;
}

export async function httpServer(respond: Respond): Promise<Upstream> {
  const u = await startUpstream({ respond });
  cleanups.push(() => u.close());
  return u;
}

async function leg(l: Leg): Promise<number> {
  return 'http' in l ? (await httpServer(l.http)).port : (await rawServer(l.raw)).port;
}

export const jsonReply = (body: unknown, headers: http.OutgoingHttpHeaders = {}): Respond => (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

export interface Rig {
  readonly proxy: TestProxy;
  /** A request through the listener; the body as bytes. */
  get(path: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer; ms: number }>;
  /** The policy's report once `n` outcomes are in (bounded wait). */
  report(n: number, timeoutMs?: number): Promise<CompareReport['policies'][number]>;
  /** The whole JSON report as it is now. */
  fullReport(): Promise<CompareReport>;
  samples(endpoint: string, field: string): Promise<SamplesReport>;
  /** Every sample of every field of the policy, as JSON text (for "is this secret anywhere?"). */
  allSamplesText(): Promise<string>;
}

export async function rig(o: { primary: Leg; candidate: Leg; reference?: Leg; compare?: Json; policy?: Json; action?: Json; filter?: Json }): Promise<Rig> {
  const primary = await leg(o.primary);
  const candidate = await leg(o.candidate);
  const reference = o.reference ? await leg(o.reference) : null;
  const compare = { ...(reference !== null ? { reference_cluster: 'reference' } : {}), ...o.compare };
  const proxy = await startProxy(extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 'cand', cluster: 'candidate', compare, ...o.policy }], o.action ?? {})],
    clusters: [cluster('primary', [primary]), cluster('candidate', [candidate]), ...(reference !== null ? [cluster('reference', [reference])] : [])],
    filter: o.filter,
  }));
  cleanups.push(() => proxy.stop());
  const fullReport = async (): Promise<CompareReport> => JSON.parse((await fetchText(`${proxy.adminUrl}/mirror/compare?format=json`)).body) as CompareReport;
  const self: Rig = {
    proxy,
    async get(path, init = {}) {
      const t0 = performance.now();
      const res = await request(`${proxy.url}${path}`, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body, headersTimeout: 20_000, bodyTimeout: 20_000 });
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: res.headers, body, ms: performance.now() - t0 };
    },
    async report(n, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < 10_000; i++) {
        const p = (await fullReport()).policies.find((x) => x.name === 'cand')!;
        const done = Object.values(p.outcomes).reduce((a, b) => a + b, 0);
        if (done >= n) return p;
        if (Date.now() > deadline) throw new Error(`${done} of ${n} outcomes after ${timeoutMs} ms: ${JSON.stringify(p.outcomes)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error('report: too many rounds');
    },
    fullReport,
    async samples(endpoint, field) {
      const q = new URLSearchParams({ policy: 'cand', endpoint, field });
      return JSON.parse((await fetchText(`${proxy.adminUrl}/mirror/compare/samples?${q}`)).body) as SamplesReport;
    },
    async allSamplesText() {
      const p = (await fullReport()).policies.find((x) => x.name === 'cand')!;
      const all: SamplesReport[] = [];
      for (const e of p.endpoints) for (const f of e.fields) if (f.samples > 0) all.push(await self.samples(e.name, f.path));
      return JSON.stringify(all);
    },
  };
  return self;
}

export const nonZero = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).filter(([, n]) => n > 0));

export const fieldsOf = (p: CompareReport['policies'][number]): string[] => p.endpoints.flatMap((e) => e.fields.map((f) => f.path)).sort();

v8.setFlagsFromString('--expose-gc');
const gcFn = vm.runInNewContext('gc') as () => void;

/** Heap bytes in use after a full collection (twice, so weak and finalised objects go too). */
export function heapAfterGc(): number {
  gcFn();
  gcFn();
  return process.memoryUsage().heapUsed;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
