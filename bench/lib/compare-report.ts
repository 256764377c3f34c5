import type { RateRow } from './rate-report';
import type { Row } from './report';

// What the compare scenario hands back: its saturation rows (the main table's shape, plus the
// comparison outcomes the proxy reported), its fixed-rate rows, and the summary that sets each
// comparing row against the mirror-only baseline.

/** `policies[].outcomes` of the proxy's /mirror/compare?format=json, the zero counts left out. */
export type Outcomes = Record<string, number>;

export interface SaturationRow extends Row {
  /** After the row's warm-up and rounds; null without a comparing policy (or when unreadable). */
  outcomes: Outcomes | null;
}

/** A fixed-rate row of the compare scenario: the outcomes the proxy counted during its measured rounds too. */
export interface CompareRateRow extends RateRow {
  /** Outcomes counted during the measured rounds (a reading after them less one before). */
  outcomes: Outcomes | null;
}

export interface SummaryLine {
  peer: string;
  /** Saturation req/s over the baseline's, per wrk connection count. */
  rpsRatio: Record<string, number | null>;
  rateP50Ms: number | null;
  rateP99Ms: number | null;
  rateCpuUsPerReq: number | null;
  /** This row's fixed-rate p50/p99 less the baseline's, ms. */
  deltaP50Ms: number | null;
  deltaP99Ms: number | null;
  saturationOutcomes: Record<string, Outcomes | null>;
  rateOutcomes: Outcomes | null;
}

/** Counts of `after` less `before`, zeros left out. */
export function outcomeDelta(before: Outcomes | null, after: Outcomes | null): Outcomes | null {
  if (after === null) return null;
  const out: Outcomes = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before?.[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

const diff = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : a - b);
const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : a / b);

export function summarize(baseline: string, peers: readonly string[], saturation: SaturationRow[], rate: CompareRateRow[]): SummaryLine[] {
  const base = rate.find((r) => r.peer === baseline)?.median;
  const conns = [...new Set(saturation.map((r) => r.conns))];
  const sat = (peer: string, c: number): SaturationRow | undefined => saturation.find((r) => r.peer === peer && r.conns === c);
  return peers.filter((p) => saturation.some((r) => r.peer === p) || rate.some((r) => r.peer === p)).map((peer) => {
    const own = rate.find((r) => r.peer === peer);
    return {
      peer,
      rpsRatio: Object.fromEntries(conns.map((c) => [`c=${c}`, ratio(sat(peer, c)?.median.rps ?? null, sat(baseline, c)?.median.rps ?? null)])),
      rateP50Ms: own?.median.p50Ms ?? null,
      rateP99Ms: own?.median.p99Ms ?? null,
      rateCpuUsPerReq: own?.median.cpuUsPerReq ?? null,
      deltaP50Ms: peer === baseline ? null : diff(own?.median.p50Ms ?? null, base?.p50Ms ?? null),
      deltaP99Ms: peer === baseline ? null : diff(own?.median.p99Ms ?? null, base?.p99Ms ?? null),
      saturationOutcomes: Object.fromEntries(conns.map((c) => [`c=${c}`, sat(peer, c)?.outcomes ?? null])),
      rateOutcomes: own?.outcomes ?? null,
    };
  });
}

const fmt = (v: number | null, digits: number, sign = false): string => (v === null ? '-' : `${sign && v >= 0 ? '+' : ''}${v.toFixed(digits)}`);
const outcomeText = (o: Outcomes | null): string => {
  if (o === null) return '-';
  const parts = Object.entries(o).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
};

/** The second table: each row against the baseline, and the outcomes the proxy counted. */
export function summaryTable(lines: SummaryLine[], offeredRps: number, baseline: string): string {
  if (lines.length === 0) return '';
  const conns = Object.keys(lines[0]?.rpsRatio ?? {});
  const head = ['peer', ...conns.map((c) => `rps/base ${c}`), `p50 ms @${offeredRps}`, `p99 ms @${offeredRps}`, 'Δp50 ms', 'Δp99 ms', 'CPU µs/req',
    ...conns.map((c) => `outcomes ${c}`), `outcomes @${offeredRps}`];
  const body = lines.map((l) => [
    l.peer,
    ...conns.map((c) => fmt(l.rpsRatio[c] ?? null, 2)),
    fmt(l.rateP50Ms, 2),
    fmt(l.rateP99Ms, 2),
    fmt(l.deltaP50Ms, 2, true),
    fmt(l.deltaP99Ms, 2, true),
    fmt(l.rateCpuUsPerReq, 1),
    ...conns.map((c) => outcomeText(l.saturationOutcomes[c] ?? null)),
    outcomeText(l.rateOutcomes),
  ]);
  const all = [head, ...body];
  const width = head.map((_, i) => Math.max(...all.map((r) => (r[i] as string).length)));
  const textCols = new Set([0, head.length - 1, ...conns.map((_, i) => head.length - 1 - conns.length + i)]);
  const pad = (r: string[]): string => r.map((c, i) => (textCols.has(i) ? c.padEnd(width[i] as number) : c.padStart(width[i] as number))).join('  ').trimEnd();
  return [
    `shadow comparison vs ${baseline} (rps/base: saturation req/s over the baseline's, wrk; @${offeredRps}: a fixed ${offeredRps} req/s, the primary's client;`,
    '  Δ: against the baseline at that rate; outcomes: policies[].outcomes of /mirror/compare?format=json, per saturation row and during the fixed-rate rounds)',
    pad(head),
    width.map((w) => '-'.repeat(w)).join('  '),
    ...body.map(pad),
  ].join('\n');
}
