import { checkGoals, type GoalCheck, goalsTable, isGoalSubject } from '../../bench/lib/goals';
import type { RateRow } from '../../bench/lib/rate-report';
import type { Medians, Row } from '../../bench/lib/report';

// The issue-13 goal checks over hand-made medians: each goal's ratio, met / not met at the
// boundary, "not measured" when its rows are missing, and which rows are held to them.

function row(scenario: string, peer: string, conns: number, m: Partial<Medians>, extra: Partial<Row> = {}): Row {
  return {
    scenario, protocol: 'h1', peer, conns, streams: 1, mirror: peer.includes('mirror'), rounds: [],
    median: { rps: null, p50Ms: null, p99Ms: null, cpuUsPerReq: null, mirrorRatio: null, ...m }, peakRssMb: 100, loadavg1m: 0, ...extra,
  };
}

function rate(peer: string, p99Ms: number, achievedRps = 2000, extra: Partial<RateRow> = {}): RateRow {
  return {
    scenario: 'fast-shadow', peer, mirror: false, offeredRps: 2000, clientConnections: 16, rounds: [], loadavg1m: 0,
    median: { achievedRps, p50Ms: 0.5, p99Ms, cpuUsPerReq: null, mirrorRatio: null }, ...extra,
  };
}

const byId = (checks: GoalCheck[], id: string): GoalCheck => {
  const c = checks.find((x) => x.id === id);
  if (!c) throw new Error(`no goal ${id}`);
  return c;
};

const FULL: Row[] = [
  row('fast-shadow', 'nginx-proxy', 64, { rps: 50_000 }),
  row('fast-shadow', 'nginx-mirror', 64, { rps: 10_000, cpuUsPerReq: 90 }),
  row('fast-shadow', 'node-http-proxy-mirror', 64, { rps: 4_000 }),
  row('fast-shadow', 'sidemirror', 64, { rps: 25_000, p50Ms: 2, p99Ms: 8 }),
  row('fast-shadow', 'sidemirror-mirror', 64, { rps: 10_000, cpuUsPerReq: 99, p50Ms: 4, p99Ms: 20 }),
  row('fast-shadow', 'sidemirror-mirror', 16, { rps: 12_000, p50Ms: 1, p99Ms: 4.5 }),
  row('slow-shadow', 'sidemirror-mirror', 64, { rps: 9_000, p99Ms: 25 }, { peakRssMb: 120 }),
];

test('every goal met exactly at its boundary (compared at the printed precision)', () => {
  const checks = checkGoals({ rows: FULL, rate: [rate('direct', 1), rate('sidemirror', 2.5), rate('sidemirror-mirror', 3)], otherRows: [], conns: 64, slowConns: 64 });
  expect(checks.map((c) => [c.id, c.status])).toEqual([
    ['mirror-rps-vs-nginx-mirror', 'met'],
    ['mirror-rps-vs-http-proxy', 'met'],
    ['mirror-cpu-vs-nginx-mirror', 'met'],
    ['no-mirror-rps-vs-nginx-proxy', 'met'],
    ['saturation-tail', 'met'],
    ['fixed-rate-added-p99', 'met'],
    ['slow-shadow-rps', 'met'],
    ['slow-shadow-p99', 'met'],
    ['peak-rss', 'met'],
  ]);
  expect(byId(checks, 'mirror-rps-vs-http-proxy').measured).toBeCloseTo(2.5);
  expect(byId(checks, 'mirror-cpu-vs-nginx-mirror').measured).toBeCloseTo(1.1);
  expect(byId(checks, 'saturation-tail').measured).toBeCloseTo(5);
  expect(byId(checks, 'saturation-tail').detail).toContain('sidemirror-mirror c=64');
  expect(byId(checks, 'fixed-rate-added-p99').measured).toBeCloseTo(2);
  expect(byId(checks, 'slow-shadow-p99').measured).toBeCloseTo(1.25);
});

test('just past each boundary: not met', () => {
  const rows = FULL.map((r) => ({ ...r, median: { ...r.median } }));
  const find = (scenario: string, peer: string, conns: number): Row => rows.find((r) => r.scenario === scenario && r.peer === peer && r.conns === conns) as Row;
  find('fast-shadow', 'sidemirror-mirror', 64).median.rps = 9_900; // 0.99× nginx-mirror
  find('fast-shadow', 'sidemirror-mirror', 64).median.cpuUsPerReq = 100; // 1.11×
  find('fast-shadow', 'sidemirror', 64).median.rps = 24_000; // 0.48×
  find('fast-shadow', 'sidemirror-mirror', 16).median.p99Ms = 5.2; // 5.2× its p50
  find('slow-shadow', 'sidemirror-mirror', 64).median.rps = 8_000; // 0.81× the fast 9,900
  find('slow-shadow', 'sidemirror-mirror', 64).peakRssMb = 121;
  const checks = checkGoals({ rows, rate: [rate('direct', 1), rate('sidemirror-mirror', 3.2)], otherRows: [], conns: 64, slowConns: 64 });
  for (const id of ['mirror-rps-vs-nginx-mirror', 'mirror-cpu-vs-nginx-mirror', 'no-mirror-rps-vs-nginx-proxy', 'saturation-tail', 'fixed-rate-added-p99', 'slow-shadow-rps', 'peak-rss']) {
    expect([id, byId(checks, id).status]).toEqual([id, 'not met']);
  }
  expect(byId(checks, 'mirror-rps-vs-http-proxy').status).toBe('met'); // 9,900 / 4,000
  expect(byId(checks, 'saturation-tail').detail).toContain('sidemirror-mirror c=16');
});

test('a goal whose rows did not run is not measured, never met', () => {
  const checks = checkGoals({ rows: [row('fast-shadow', 'sidemirror-mirror', 64, { rps: 10_000 })], rate: [], otherRows: [], conns: 64, slowConns: 64 });
  for (const id of ['mirror-rps-vs-nginx-mirror', 'no-mirror-rps-vs-nginx-proxy', 'fixed-rate-added-p99', 'slow-shadow-rps']) expect(byId(checks, id).status).toBe('not measured');
  expect(goalsTable(checks, 3)).toContain('NOT MEASURED');
});

test('the added p99 is the worst sidemirror row against direct, and says when the rate was not kept', () => {
  const checks = checkGoals({ rows: FULL, rate: [rate('direct', 1.5), rate('sidemirror', 2), rate('sidemirror-mirror', 9, 1500), rate('sidemirror-mirror-node-http', 50)], otherRows: [], conns: 64, slowConns: 64 });
  const c = byId(checks, 'fixed-rate-added-p99');
  expect(c.measured).toBeCloseTo(7.5);
  expect(c.detail).toContain('sidemirror-mirror (saturated: rate not kept)');
});

test('memory: every single-process fast-codec sidemirror row of every scenario, not the node:http or multi-worker rows', () => {
  expect(isGoalSubject('sidemirror-compare', 'fast', undefined)).toBe(true);
  expect(isGoalSubject('sidemirror-mirror-node-http', 'node', undefined)).toBe(false);
  expect(isGoalSubject('sidemirror-mirror-c2', 'fast', 2)).toBe(false);
  expect(isGoalSubject('nginx-mirror', undefined, undefined)).toBe(false);
  const rows = [
    ...FULL,
    row('fast-shadow', 'sidemirror-mirror-node-http', 64, {}, { codec: 'node', peakRssMb: 500 }),
    row('fast-shadow', 'sidemirror-mirror-c2', 64, {}, { codec: 'fast', workers: 2, peakRssMb: 400 }),
    row('fast-shadow', 'nginx-mirror', 16, {}, { peakRssMb: 300 }),
  ];
  const other = [row('compare', 'sidemirror-compare', 16, {}, { codec: 'fast', peakRssMb: 130 })];
  const c = byId(checkGoals({ rows, rate: [], otherRows: other, conns: 64, slowConns: 64 }), 'peak-rss');
  expect(c.measured).toBe(130);
  expect(c.status).toBe('not met');
  expect(c.detail).toContain('compare h1 sidemirror-compare c=16');
});

test('the table counts the goals met and says when fewer than 3 rounds were run', () => {
  const checks = checkGoals({ rows: FULL, rate: [rate('direct', 1), rate('sidemirror', 2), rate('sidemirror-mirror', 2)], otherRows: [], conns: 64, slowConns: 64 });
  expect(goalsTable(checks, 3).split('\n')[0]).toBe('goals: 9 of 9 met');
  expect(goalsTable(checks, 3)).not.toContain('indicative');
  expect(goalsTable(checks, 1)).toContain('indicative');
});
