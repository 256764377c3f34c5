import type { RateRow } from './rate-report';
import { fellBehind } from './rate-report';
import type { Row } from './report';

// Issue 13's goals, each checked against this run's medians: the measured figure, the target,
// met or not. A goal whose rows did not run is "not measured", never met. Only sidemirror's
// default (fast) codec in one process is held to them (the rows named sidemirror and
// sidemirror-mirror, and for memory every such row); the node:http codec rows (-node-http) and
// the multi-worker rows are there to compare against.

export type GoalStatus = 'met' | 'not met' | 'not measured';

export interface GoalCheck {
  id: string;
  /** The goal in issue 13's words. */
  goal: string;
  /** The figure compared with the target: a ratio (×), milliseconds or MB. */
  measured: number | null;
  target: number;
  op: '>=' | '<=';
  unit: '×' | 'ms' | 'MB';
  status: GoalStatus;
  /** Which rows the figure came from. */
  detail: string;
}

export interface GoalInputs {
  /** The main table's rows (fast and slow shadow, h2c, gRPC). */
  rows: Row[];
  /** The fast-shadow rows at a fixed offered rate. */
  rate: RateRow[];
  /** Other rows held to the memory goal (the compare scenario's saturation rows). */
  otherRows: Row[];
  /** The connection count the goals speak of (64), or the largest the run had. */
  conns: number;
  slowConns: number;
}

export const MIRROR = 'sidemirror-mirror';
export const NO_MIRROR = 'sidemirror';

/** A sidemirror row the goals hold to account: sidemirror, its default codec, one process. */
export function isGoalSubject(peer: string, codec: string | undefined, workers: number | undefined): boolean {
  return peer.startsWith('sidemirror') && (codec === undefined || codec === 'fast') && (workers ?? 1) === 1;
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;

function check(id: string, goal: string, measured: number | null, op: '>=' | '<=', target: number, unit: GoalCheck['unit'], detail: string): GoalCheck {
  // Compared at the precision printed, so a figure shown as 1.00× against ≥ 1.0× reads as met.
  const digits = unit === '×' ? 2 : 1;
  const shown = measured === null ? null : Number(measured.toFixed(digits));
  const status: GoalStatus = shown === null ? 'not measured' : (op === '>=' ? shown >= target : shown <= target) ? 'met' : 'not met';
  return { id, goal, measured, target, op, unit, status, detail };
}

/** The worst of several figures (highest for a ≤ goal), with the label of the row it came from. */
function worst(items: { value: number | null; label: string }[], op: '>=' | '<='): { value: number | null; label: string } {
  const known = items.filter((i): i is { value: number; label: string } => i.value !== null);
  if (known.length === 0) return { value: null, label: items.length === 0 ? 'no rows' : 'no figures' };
  return known.reduce((a, b) => ((op === '<=' ? b.value > a.value : b.value < a.value) ? b : a));
}

export function checkGoals(g: GoalInputs): GoalCheck[] {
  const fast = (peer: string, conns: number): Row | undefined =>
    g.rows.find((r) => r.scenario === 'fast-shadow' && r.protocol === 'h1' && r.peer === peer && r.conns === conns);
  const slow = g.rows.find((r) => r.scenario === 'slow-shadow' && r.peer === MIRROR && r.conns === g.slowConns);
  const c = g.conns;
  const m = fast(MIRROR, c)?.median;
  const nm = fast('nginx-mirror', c)?.median;
  const out: GoalCheck[] = [
    check('mirror-rps-vs-nginx-mirror', `Envoy mirror, c=${c}: req/s ≥ 1.0× nginx+mirror`, ratio(m?.rps, nm?.rps), '>=', 1.0, '×', `${MIRROR} / nginx-mirror, fast shadow c=${c}`),
    check('mirror-rps-vs-http-proxy', `Envoy mirror, c=${c}: req/s ≥ 2× Node http-proxy+mirror`, ratio(m?.rps, fast('node-http-proxy-mirror', c)?.median.rps), '>=', 2.0, '×',
      `${MIRROR} / node-http-proxy-mirror, fast shadow c=${c}`),
    check('mirror-cpu-vs-nginx-mirror', `Envoy mirror, c=${c}: CPU µs/request ≤ 1.1× nginx+mirror's`, ratio(m?.cpuUsPerReq, nm?.cpuUsPerReq), '<=', 1.1, '×',
      `${MIRROR} / nginx-mirror CPU µs/req, fast shadow c=${c}`),
    check('no-mirror-rps-vs-nginx-proxy', `no mirror, c=${c}: req/s ≥ 0.5× nginx proxy_pass`, ratio(fast(NO_MIRROR, c)?.median.rps, fast('nginx-proxy', c)?.median.rps), '>=', 0.5, '×',
      `${NO_MIRROR} / nginx-proxy, fast shadow c=${c}`),
  ];

  const saturated = g.rows.filter((r) => r.scenario === 'fast-shadow' && r.protocol === 'h1' && (r.peer === MIRROR || r.peer === NO_MIRROR));
  const tail = worst(saturated.map((r) => ({ value: ratio(r.median.p99Ms, r.median.p50Ms), label: `${r.peer} c=${r.conns}` })), '<=');
  out.push(check('saturation-tail', 'p99 at saturation ≤ 5× p50', tail.value, '<=', 5, '×', `worst of the sidemirror fast-shadow rows: ${tail.label}`));

  const direct = g.rate.find((r) => r.peer === 'direct')?.median.p99Ms ?? null;
  const atRate = g.rate.filter((r) => r.peer === MIRROR || r.peer === NO_MIRROR);
  const rates = [...new Set(g.rate.map((r) => r.offeredRps))].join(', ') || '2000';
  const added = worst(atRate.map((r) => ({ value: direct === null || r.median.p99Ms === null ? null : r.median.p99Ms - direct, label: `${r.peer}${fellBehind(r) ? ' (saturated: rate not kept)' : ''}` })), '<=');
  out.push(check('fixed-rate-added-p99', `at ${rates} req/s offered: p99 ≤ direct + 2 ms`, added.value, '<=', 2, 'ms',
    `worst p99 less direct's (${direct === null ? '-' : direct.toFixed(2)} ms): ${added.label}`));

  const fastAtSlowConns = fast(MIRROR, g.slowConns)?.median;
  out.push(
    check('slow-shadow-rps', 'a 2 s shadow: req/s ≥ 0.9× the fast shadow\'s', ratio(slow?.median.rps, fastAtSlowConns?.rps), '>=', 0.9, '×', `${MIRROR} slow / fast shadow, c=${g.slowConns}`),
    check('slow-shadow-p99', 'a 2 s shadow: p99 ≤ 1.25× the fast shadow\'s', ratio(slow?.median.p99Ms, fastAtSlowConns?.p99Ms), '<=', 1.25, '×', `${MIRROR} slow / fast shadow, c=${g.slowConns}`),
  );

  const held = [...g.rows, ...g.otherRows].filter((r) => isGoalSubject(r.peer, r.codec, r.workers));
  const rss = worst(held.map((r) => ({ value: r.peakRssMb, label: `${r.scenario} ${r.protocol} ${r.peer} c=${r.conns}` })), '<=');
  out.push(check('peak-rss', 'peak RSS ≤ 120 MB in every scenario', rss.value, '<=', 120, 'MB', `largest of ${held.length} sidemirror rows: ${rss.label}`));
  return out;
}

function measuredText(c: GoalCheck): string {
  if (c.measured === null) return '-';
  if (c.unit === '×') return `${c.measured.toFixed(2)}×`;
  return `${c.unit === 'ms' && c.measured >= 0 ? '+' : ''}${c.measured.toFixed(1)} ${c.unit}`;
}

/** The goals, one a line, after the table. */
export function goalsTable(checks: GoalCheck[], rounds: number): string {
  const head = ['goal (issue 13)', 'measured', 'status', 'from'];
  const lines = checks.map((c) => [c.goal, measuredText(c), c.status.toUpperCase(), c.detail]);
  const all = [head, ...lines];
  const width = head.map((_, i) => Math.max(...all.map((l) => (l[i] as string).length)));
  const pad = (l: string[]): string => l.map((x, i) => (i === 1 ? x.padStart(width[i] as number) : x.padEnd(width[i] as number))).join('  ').trimEnd();
  const met = checks.filter((c) => c.status === 'met').length;
  const out = [`goals: ${met} of ${checks.length} met`, pad(head), width.map((w) => '-'.repeat(w)).join('  '), ...lines.map(pad)];
  if (rounds < 3) out.push(`(${rounds} round(s) per row: the goals ask for medians of at least 3; these are indicative)`);
  return out.join('\n');
}
