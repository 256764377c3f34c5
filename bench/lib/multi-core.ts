import { wrkDriver } from './drivers';
import { measure, type MeasureSettings, type Upstreams } from './measure';
import { sidemirrorMirrorWorkers, type PeerEnv } from './peers';
import { median, type RoundResult, type Row } from './report';

// `--concurrency-mode`: sidemirror with the Envoy mirror policy at --concurrency 1, 2, 4, on the
// fast shadow, every core but the load core given to the proxy. The model: `--concurrency N` is a
// cluster supervisor and N workers. Node 20 has no SO_REUSEPORT (it came in 22.12), so the
// supervisor accepts every connection and hands it to a worker over IPC, round-robin: a cost per
// connection, not per request (wrk's connections are kept alive for a whole round). Where the
// proxy has fewer cores than workers, req/s cannot scale, but CPU per request can still be read
// honestly: each worker's user + system time from /proc/<pid>/stat over the round, summed and
// divided by the requests, and the supervisor's apart.

export interface MultiCoreMedians {
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** The whole tree's CPU per request (as in the main table). */
  cpuUsPerReq: number | null;
  /** The workers' CPU summed, per request. */
  workersUsPerReq: number | null;
  /** The supervisor's own CPU per request (null: one process). */
  supervisorUsPerReq: number | null;
  /** Each worker's share of the workers' CPU over all rounds (how evenly round-robin spread the connections). */
  workerShares: number[];
}

export interface MultiCoreRow {
  workers: number;
  /** The cores the proxy was pinned to (null: unpinned). */
  peerCores: string | null;
  /** Workers ≤ the proxy's cores: only then is req/s a scaling figure. */
  rpsScales: boolean;
  row: Row;
  median: MultiCoreMedians;
}

export interface MultiCoreResult {
  conns: number;
  peerCores: string | null;
  rows: MultiCoreRow[];
}

const perRequest = (seconds: number | null | undefined, r: RoundResult): number | null =>
  seconds === null || seconds === undefined || r.requests === null || r.requests === 0 ? null : (seconds * 1e6) / r.requests;

/** The medians of a multi-worker row, from its rounds' CPU by role. */
export function multiCoreMedians(row: Row): MultiCoreMedians {
  const ok = row.rounds.filter((r) => r.error === undefined);
  const totals: number[] = [];
  for (const r of ok) (r.processCpu?.workerSeconds ?? []).forEach((s, i) => (totals[i] = (totals[i] ?? 0) + s));
  const sum = totals.reduce((a, b) => a + b, 0);
  return {
    rps: row.median.rps,
    p50Ms: row.median.p50Ms,
    p99Ms: row.median.p99Ms,
    cpuUsPerReq: row.median.cpuUsPerReq,
    workersUsPerReq: median(ok.map((r) => perRequest(r.processCpu?.workerSeconds.reduce((a, b) => a + b, 0), r))),
    supervisorUsPerReq: median(ok.map((r) => perRequest(r.processCpu?.supervisorSeconds, r))),
    workerShares: sum > 0 ? totals.map((t) => t / sum) : [],
  };
}

export interface MultiCoreSettings {
  ms: MeasureSettings;
  workers: number[];
  conns: number;
  /** The fast-shadow environment, with `cpus` the proxy's cores. */
  env: PeerEnv;
  up: Upstreams;
  loadCpus: string | undefined;
}

export async function runMultiCore(s: MultiCoreSettings): Promise<MultiCoreResult> {
  const cores = s.env.cpus === undefined ? null : s.env.cpus.split(',').length;
  // The noise figure reads one core against the tree's CPU: meaningless when the proxy spans several.
  const ms = cores !== null && cores > 1 ? { ...s.ms, pinned: false } : s.ms;
  const rows: MultiCoreRow[] = [];
  for (const n of s.workers) {
    const row = await measure(ms, 'multi-core', sidemirrorMirrorWorkers(n), wrkDriver(s.conns, s.loadCpus), s.env, s.up);
    rows.push({ workers: n, peerCores: s.env.cpus ?? null, rpsScales: cores !== null && n <= cores, row, median: multiCoreMedians(row) });
  }
  return { conns: s.conns, peerCores: s.env.cpus ?? null, rows };
}

const fmt = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));

export function multiCoreTable(r: MultiCoreResult): string {
  if (r.rows.length === 0) return '';
  const one = r.rows.find((x) => x.workers === 1)?.median.rps ?? null;
  const head = ['workers', 'req/s', 'vs 1 worker', 'p50 ms', 'p99 ms', 'CPU µs/req', 'workers µs/req', 'supervisor µs/req', 'worker CPU split', 'peak RSS MB'];
  const lines = r.rows.map((x) => [
    String(x.workers),
    `${fmt(x.median.rps, 0)}${x.rpsScales ? '' : '~'}`,
    one === null || x.median.rps === null ? '-' : `${(x.median.rps / one).toFixed(2)}×`,
    fmt(x.median.p50Ms, 2),
    fmt(x.median.p99Ms, 2),
    fmt(x.median.cpuUsPerReq, 1),
    fmt(x.median.workersUsPerReq, 1),
    fmt(x.median.supervisorUsPerReq, 1),
    x.median.workerShares.length > 1 ? x.median.workerShares.map((s) => `${Math.round(s * 100)}`).join('/') : '-',
    fmt(x.row.peakRssMb, 1),
  ]);
  const all = [head, ...lines];
  const width = head.map((_, i) => Math.max(...all.map((l) => (l[i] as string).length)));
  const pad = (l: string[]): string => l.map((c, i) => (i === 8 ? c.padEnd(width[i] as number) : c.padStart(width[i] as number))).join('  ').trimEnd();
  const out = [
    `multi-core: sidemirror-mirror --concurrency N, fast shadow, wrk c=${r.conns}, proxy on ${r.peerCores === null ? 'any core' : `core(s) ${r.peerCores}`}` +
      ' (workers µs/req: every worker\'s user+sys CPU over the round / requests; the supervisor\'s apart; 1 worker is one process, no supervisor)',
    pad(head),
    width.map((w) => '-'.repeat(w)).join('  '),
    ...lines.map(pad),
  ];
  if (r.rows.some((x) => !x.rpsScales)) out.push('~ more workers than the proxy\'s cores: they share them, so req/s is no scaling figure here; read the µs/req');
  return out.join('\n');
}
