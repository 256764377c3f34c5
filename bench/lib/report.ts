import type { RoleCpu } from './proc';

// Result shapes, medians and the printed table.

export interface RoundResult {
  rps: number | null;
  requests: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  cpuSeconds: number | null;
  cpuUsPerReq: number | null;
  /** Requests that reached PRIMARY / the shadow during the round (counted by the upstreams). */
  primaryRequests: number | null;
  shadowRequests: number | null;
  /** Busy fraction of the peer's core and of the load core (wrk + upstreams) while wrk ran. */
  peerCoreBusy: number | null;
  /** irq + softirq share of the peer's core (network stack work, charged to no process). */
  peerCoreIrq: number | null;
  /** The part of peerCoreBusy spent neither by the peer nor in irq/softirq: other work (noise). */
  otherOnPeerCore: number | null;
  loadCoreBusy: number | null;
  mirrorRatio: number | null;
  non2xx: number | null;
  socketErrors: number | null;
  /** The load tool's words about the errors, when there were any (h2load). */
  errorDetail?: string;
  /** The round's CPU seconds by process role (supervisor, each worker), for peers that ask for it. */
  processCpu?: RoleCpu;
  error?: string;
}

export interface Medians {
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  cpuUsPerReq: number | null;
  mirrorRatio: number | null;
}

export interface Row {
  scenario: string;
  /** h1 (wrk), h2c or grpc (h2load). */
  protocol: string;
  peer: string;
  /** sidemirror's HTTP/1.1 codec (SIDEMIRROR_HTTP1_CODEC), for sidemirror rows. */
  codec?: string;
  /** sidemirror's --concurrency, when above 1 (the tree is a supervisor and its workers). */
  workers?: number;
  conns: number;
  /** Requests in flight per connection: 1 for HTTP/1.1, h2load's -m for HTTP/2. */
  streams: number;
  mirror: boolean;
  rounds: RoundResult[];
  median: Medians;
  peakRssMb: number | null;
  /** 1-minute load average when the peer started (other work on the machine skews results). */
  loadavg1m: number;
  error?: string;
}

export function median(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export function medians(rounds: RoundResult[]): Medians {
  const m = (k: keyof Medians): number | null => median(rounds.map((r) => r[k]));
  return { rps: m('rps'), p50Ms: m('p50Ms'), p99Ms: m('p99Ms'), cpuUsPerReq: m('cpuUsPerReq'), mirrorRatio: m('mirrorRatio') };
}

function hadErrors(r: Row): boolean {
  return r.rounds.some((x) => (x.non2xx ?? 0) > 0 || (x.socketErrors ?? 0) > 0);
}

const fmt = (v: number | null, digits: number): string => (v === null ? '-' : v.toFixed(digits));
const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : a / b);

export function table(rows: Row[]): string {
  const find = (r: Row, peer: string): Row | undefined =>
    rows.find((x) => x.scenario === r.scenario && x.protocol === r.protocol && x.peer === peer && x.conns === r.conns && x.streams === r.streams);
  // The same peer over HTTP/1.1 with as many requests in flight (h2c 16×4 against h1 c=64). Not
  // for gRPC's direct row: its upstream is grpc-js, not nginx.
  const h1Twin = (r: Row): Row | undefined =>
    r.protocol === 'h1' || (r.protocol === 'grpc' && r.peer === 'direct') ? undefined : rows.find((x) => x.scenario === 'fast-shadow' && x.protocol === 'h1' && x.peer === r.peer && x.conns === r.conns * r.streams);
  const head = ['scenario', 'proto', 'peer', 'conns', 'streams', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'peak RSS MB', 'mirror', 'rps/ngx-mir', 'rps/direct', 'cpu/ngx-mir', 'rps/h1'];
  const lines = rows.map((r) => {
    const nm = find(r, 'nginx-mirror')?.median;
    const d = (find(r, 'direct') ?? find({ ...r, scenario: 'fast-shadow' }, 'direct'))?.median;
    return [
      r.scenario,
      r.protocol,
      hadErrors(r) ? `${r.peer}*` : r.peer,
      String(r.conns),
      String(r.streams),
      fmt(r.median.rps, 0),
      fmt(r.median.p50Ms, 2),
      fmt(r.median.p99Ms, 2),
      fmt(r.median.cpuUsPerReq, 1),
      fmt(r.peakRssMb, 1),
      r.mirror ? fmt(r.median.mirrorRatio, 3) : '-',
      fmt(ratio(r.median.rps, nm?.rps ?? null), 2),
      fmt(ratio(r.median.rps, d?.rps ?? null), 2),
      fmt(ratio(r.median.cpuUsPerReq, nm?.cpuUsPerReq ?? null), 2),
      fmt(ratio(r.median.rps, h1Twin(r)?.median.rps ?? null), 2),
    ];
  });
  const all = [head, ...lines];
  const width = head.map((_, i) => Math.max(...all.map((l) => (l[i] as string).length)));
  const pad = (l: string[]): string => l.map((c, i) => (i < 3 ? c.padEnd(width[i] as number) : c.padStart(width[i] as number))).join('  ');
  const out = [pad(head), width.map((w) => '-'.repeat(w)).join('  '), ...lines.map(pad)];
  if (rows.some(hadErrors)) out.push('* some responses were non-2xx/3xx or hit socket errors (see the JSON)');
  if (rows.some((r) => r.protocol !== 'h1')) {
    out.push('rps/h1: against the same peer over HTTP/1.1 (fast shadow) with as many requests in flight (conns × streams);');
    out.push('  gRPC rows have a grpc-js upstream (their direct row) where the HTTP/1.1 and h2c rows have nginx');
  }
  return out.join('\n');
}
