import { parseCpuinfo, parseOpensslSpeed, summarizeJsProbe } from '../../bench/lib/machine-probe';
import { multiCoreMedians } from '../../bench/lib/multi-core';
import { cpuByRole } from '../../bench/lib/proc';
import { fellBehind, rateTable, type RateRow } from '../../bench/lib/rate-report';
import { emptyRound } from '../../bench/lib/measure';
import type { Row } from '../../bench/lib/report';

// The bench's parsers and per-row arithmetic: /proc/cpuinfo, openssl speed's output, the JS
// probe's best pass, CPU by process role, the multi-core medians, the fixed-rate table.

const CPUINFO = `processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
cpu MHz\t\t: 2450.000
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
cpu MHz\t\t: 3050.125
flags\t\t: fpu vme
`;

test('cpuinfo: the model and the clock of the asked core, the processor count', () => {
  expect(parseCpuinfo(CPUINFO, 1)).toEqual({ model: 'AMD EPYC 7B13', mhz: 3050.125, processors: 2 });
  expect(parseCpuinfo(CPUINFO, 0).mhz).toBe(2450);
  // A core not listed: the first block. An ARM cpuinfo has neither model name nor MHz.
  expect(parseCpuinfo(CPUINFO, 7).mhz).toBe(2450);
  expect(parseCpuinfo('processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n')).toEqual({ model: null, mhz: null, processors: 1 });
});

test('openssl speed: the result line, in MB/s; null without one', () => {
  const out = `Doing sha256 for 1s on 16384 size blocks: 113635 sha256's in 1.00s
version: 3.0.19
The 'numbers' are in 1000s of bytes per second processed.
type          16384 bytes
sha256         1861780.15k
`;
  expect(parseOpensslSpeed(out)).toBeCloseTo(1861.78015);
  expect(parseOpensslSpeed('Doing sha256 for 1s on 16384 size blocks\n')).toBeNull();
});

test('JS probe: the pass with the least CPU time, and its share of the core', () => {
  const p = summarizeJsProbe(1000, [{ wallMs: 300, cpuMs: 250 }, { wallMs: 400, cpuMs: 200 }, { wallMs: 220, cpuMs: 210 }]);
  expect(p.bestCpuMs).toBe(200);
  expect(p.coreShare).toBeCloseTo(0.5);
  expect(summarizeJsProbe(1000, []).bestCpuMs).toBeNull();
});

test('CPU by role: supervisor and each worker apart; one process is the proxy itself', () => {
  const before = [{ pid: 10, ppid: 1, seconds: 1 }, { pid: 11, ppid: 10, seconds: 5 }, { pid: 12, ppid: 10, seconds: 6 }];
  const after = [{ pid: 10, ppid: 1, seconds: 1.2 }, { pid: 12, ppid: 10, seconds: 8 }, { pid: 11, ppid: 10, seconds: 7.5 }, { pid: 13, ppid: 10, seconds: 0.5 }, { pid: 20, ppid: 13, seconds: 0.1 }];
  const r = cpuByRole(10, before, after);
  expect(r.supervisorSeconds).toBeCloseTo(0.2);
  // By pid; pid 13 started meanwhile and counts from zero; its child is "other".
  expect(r.workerSeconds.map((x) => Number(x.toFixed(3)))).toEqual([2.5, 2, 0.5]);
  expect(r.otherSeconds).toBeCloseTo(0.1);
  expect(cpuByRole(10, [{ pid: 10, ppid: 1, seconds: 1 }], [{ pid: 10, ppid: 1, seconds: 3 }])).toEqual({ supervisorSeconds: null, workerSeconds: [2], otherSeconds: 0 });
});

test('multi-core medians: workers summed per request, the supervisor apart, each worker\'s share over all rounds', () => {
  const round = (requests: number, sup: number, workers: number[]) => ({ ...emptyRound('x'), error: undefined, requests, processCpu: { supervisorSeconds: sup, workerSeconds: workers, otherSeconds: 0 } });
  const row = { rounds: [round(10_000, 0.01, [0.3, 0.2]), round(10_000, 0.02, [0.2, 0.3]), round(20_000, 0.02, [0.5, 0.5])], median: { rps: 1, p50Ms: 1, p99Ms: 2, cpuUsPerReq: 60, mirrorRatio: 1 } } as unknown as Row;
  const m = multiCoreMedians(row);
  expect(m.workersUsPerReq).toBeCloseTo(50);
  expect(m.supervisorUsPerReq).toBeCloseTo(1);
  expect(m.workerShares.map((s) => Number(s.toFixed(3)))).toEqual([0.5, 0.5]);
});

test('fixed-rate table: what each row adds to direct; a row that could not keep the rate is marked', () => {
  const r = (peer: string, achievedRps: number, p50Ms: number, p99Ms: number, skipped = 0): RateRow => ({
    scenario: 'fast-shadow', peer, mirror: false, offeredRps: 2000, clientConnections: 16, loadavg1m: 0,
    rounds: [{ ...emptyRound('x'), error: undefined, skipped } as never], median: { achievedRps, p50Ms, p99Ms, cpuUsPerReq: 10, mirrorRatio: null },
  });
  const rows = [r('direct', 2000, 0.3, 0.9), r('sidemirror', 1995, 0.7, 2.4), r('sidemirror-mirror', 1800, 40, 90), r('nginx-mirror', 2000, 0.5, 1, 3)];
  expect(rows.map(fellBehind)).toEqual([false, false, true, true]);
  const text = rateTable(rows);
  const line = (peer: string): string => text.split('\n').find((l) => l.startsWith(peer) && l.slice(peer.length, peer.length + 1) !== '-') as string;
  expect(line('sidemirror ').split(/\s+/).slice(5, 7)).toEqual(['+0.40', '+1.50']);
  expect(line('sidemirror-mirror!')).toBeDefined();
  expect(line('nginx-mirror!')).toBeDefined();
  expect(text).toContain('! the offered rate was not kept');
});
