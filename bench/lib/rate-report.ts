import { median } from './report';

// Result shapes of the fixed-rate rows (a fixed offered rate below saturation, from
// bench/peers/rate-client.ts), their medians, and the table of the fast-shadow ones against direct.

export interface RateRound {
  offeredRps: number;
  sent: number | null;
  ok: number | null;
  non2xx: number | null;
  errors: number | null;
  /** Schedule slots the client dropped because too many requests were outstanding. */
  skipped: number | null;
  /** ok / the client's run time. */
  achievedRps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  cpuUsPerReq: number | null;
  /** Requests each upstream counted during the round (after a settle pause), by the row's names for them. */
  upstreamRequests: Record<string, number> | null;
  /** Requests the mirror target counted over those the primary counted (mirror peers only). */
  mirrorRatio: number | null;
  /** As in the saturation rows: the peer's core busy, the part of it neither the peer's nor irq (noise), the load core busy. */
  peerCoreBusy: number | null;
  otherOnPeerCore: number | null;
  loadCoreBusy: number | null;
  error?: string;
}

export interface RateMedians {
  achievedRps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  cpuUsPerReq: number | null;
  mirrorRatio: number | null;
}

export interface RateRow {
  scenario: string;
  peer: string;
  /** sidemirror's HTTP/1.1 codec (SIDEMIRROR_HTTP1_CODEC) for sidemirror rows. */
  codec?: string;
  mirror: boolean;
  offeredRps: number;
  /** The client's keep-alive connections. */
  clientConnections: number;
  rounds: RateRound[];
  median: RateMedians;
  /** 1-minute load average when the peer started. */
  loadavg1m: number;
  error?: string;
}

export function rateMedians(rounds: RateRound[]): RateMedians {
  const m = (k: keyof RateMedians): number | null => median(rounds.map((r) => r[k]));
  return { achievedRps: m('achievedRps'), p50Ms: m('p50Ms'), p99Ms: m('p99Ms'), cpuUsPerReq: m('cpuUsPerReq'), mirrorRatio: m('mirrorRatio') };
}

/** The client could not keep the schedule, or the peer not the rate: the row measured saturation, not added latency. */
export function fellBehind(r: RateRow): boolean {
  const m = r.median.achievedRps;
  return r.rounds.some((x) => (x.skipped ?? 0) > 0) || (m !== null && m < 0.97 * r.offeredRps);
}

function hadErrors(r: RateRow): boolean {
  return r.rounds.some((x) => (x.non2xx ?? 0) > 0 || (x.errors ?? 0) > 0);
}

const fmt = (v: number | null, d: number, sign = false): string => (v === null ? '-' : `${sign && v >= 0 ? '+' : ''}${v.toFixed(d)}`);
const diff = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : a - b);

/** Each fixed-rate row with its p50/p99 and what it adds to direct's at the same rate. */
export function rateTable(rows: RateRow[], directPeer = 'direct'): string {
  if (rows.length === 0) return '';
  const d = rows.find((r) => r.peer === directPeer)?.median;
  const rates = [...new Set(rows.map((r) => r.offeredRps))];
  const head = ['peer', 'offered', 'req/s', 'p50 ms', 'p99 ms', '+p50 vs direct', '+p99 vs direct', 'CPU µs/req', 'mirror'];
  const lines = rows.map((r) => [
    `${r.peer}${hadErrors(r) ? '*' : ''}${fellBehind(r) ? '!' : ''}`,
    String(r.offeredRps),
    fmt(r.median.achievedRps, 0),
    fmt(r.median.p50Ms, 2),
    fmt(r.median.p99Ms, 2),
    r.peer === directPeer ? '-' : fmt(diff(r.median.p50Ms, d?.p50Ms ?? null), 2, true),
    r.peer === directPeer ? '-' : fmt(diff(r.median.p99Ms, d?.p99Ms ?? null), 2, true),
    fmt(r.median.cpuUsPerReq, 1),
    r.mirror ? fmt(r.median.mirrorRatio, 3) : '-',
  ]);
  const all = [head, ...lines];
  const width = head.map((_, i) => Math.max(...all.map((l) => (l[i] as string).length)));
  const pad = (l: string[]): string => l.map((c, i) => (i === 0 ? c.padEnd(width[i] as number) : c.padStart(width[i] as number))).join('  ');
  const out = [
    `fast shadow at a fixed offered rate (${rates.join(', ')} req/s from ${rows[0]?.clientConnections ?? '?'} keep-alive connections, bench/peers/rate-client.ts on the load core; medians of ${rows[0]?.rounds.length ?? 0} rounds)`,
    pad(head),
    width.map((w) => '-'.repeat(w)).join('  '),
    ...lines.map(pad),
  ];
  if (rows.some(hadErrors)) out.push('* some responses were non-2xx/3xx or failed (see the JSON)');
  if (rows.some(fellBehind)) out.push('! the offered rate was not kept (requests skipped or under 97% achieved): this row is saturated, its latency is queueing');
  return out.join('\n');
}
