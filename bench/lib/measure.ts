import * as os from 'node:os';
import { coreBusy, coreIrq, readCoreTimes } from './cores';
import type { LoadDriver } from './drivers';
import type { PeerDef, PeerEnv, RunningPeer } from './peers';
import { cpuByRole, treeCpuByProcess, treeCpuSeconds, treePeakRssMb } from './proc';
import { sleep } from './processes';
import { medians, type RoundResult, type Row } from './report';
import type { Shadow, Upstream } from './upstreams';

// One row of the table: a fresh peer, a warm-up, the measured rounds, its peak RSS. The load
// comes from a driver (wrk or h2load), so HTTP/1.1, h2c and gRPC rows are measured alike.

export const SETTLE_MS = 300; // after each load run, so mirrored requests still in flight are counted

export interface Upstreams {
  primary: Upstream;
  shadow: Shadow;
}

export interface MeasureSettings {
  rounds: number;
  duration: number;
  warmup: number;
  pinned: boolean;
  peerCore: string;
  loadCore: string;
  progress: (msg: string) => void;
}

const fmt = (v: number | null, d = 0): string => (v === null ? '-' : v.toFixed(d));
const pct = (v: number | null): string => (v === null ? '-' : `${Math.round(v * 100)}%`);

export function emptyRound(error: string): RoundResult {
  return {
    rps: null,
    requests: null,
    p50Ms: null,
    p99Ms: null,
    cpuSeconds: null,
    cpuUsPerReq: null,
    primaryRequests: null,
    shadowRequests: null,
    mirrorRatio: null,
    peerCoreBusy: null,
    peerCoreIrq: null,
    otherOnPeerCore: null,
    loadCoreBusy: null,
    non2xx: null,
    socketErrors: null,
    error,
  };
}

/**
 * One measured round: about `duration` s of load; around it, the CPU time of the peer's process
 * tree, the requests PRIMARY and the shadow received (read after a settle pause, so mirrored
 * requests still in flight when the load stops are counted) and how busy both cores were.
 */
async function round(s: MeasureSettings, peer: PeerDef, running: RunningPeer, load: LoadDriver, up: Upstreams): Promise<RoundResult> {
  const byProcess0 = peer.perProcessCpu === true ? treeCpuByProcess(running.pid) : null;
  const cpu0 = treeCpuSeconds(running.pid);
  const [primary0, shadow0] = await Promise.all([up.primary.read(), up.shadow.read()]);
  const cores0 = readCoreTimes();
  const t0 = performance.now();
  const { result, output } = await load.run(running.port, s.duration);
  const cores1 = readCoreTimes();
  const loadWindow = (performance.now() - t0) / 1000;
  const cpuDuringLoad = treeCpuSeconds(running.pid) - cpu0;
  await sleep(SETTLE_MS);
  const cpu = treeCpuSeconds(running.pid) - cpu0;
  const processCpu = byProcess0 !== null ? cpuByRole(running.pid, byProcess0, treeCpuByProcess(running.pid)) : undefined;
  const [primary1, shadow1] = await Promise.all([up.primary.read(), up.shadow.read()]);
  const tool = load.protocol === 'h1' ? 'wrk' : 'h2load';
  if (!result) return emptyRound(`${tool} failed: ${output.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
  if (result.rps === 0 || result.requests === 0) return emptyRound('0 requests/sec');
  const primaryRequests = up.primary.delta(primary0, primary1);
  const shadowRequests = up.shadow.delta(shadow0, shadow1);
  const peerCoreBusy = coreBusy(cores0, cores1, `cpu${s.peerCore}`);
  const peerCoreIrq = coreIrq(cores0, cores1, `cpu${s.peerCore}`);
  // What the peer's core spent on neither the peer nor the network stack: other work (noise).
  const ownShare = (peer.onPeerCore === false ? 0 : cpuDuringLoad / loadWindow) + (peerCoreIrq ?? 0);
  const otherOnPeerCore = peerCoreBusy === null || !s.pinned ? null : Math.max(0, peerCoreBusy - ownShare);
  return {
    rps: result.rps,
    requests: result.requests,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    cpuSeconds: cpu,
    cpuUsPerReq: (cpu * 1e6) / result.requests,
    primaryRequests,
    shadowRequests,
    mirrorRatio: peer.mirror && primaryRequests > 0 ? shadowRequests / primaryRequests : null,
    peerCoreBusy,
    peerCoreIrq,
    otherOnPeerCore,
    loadCoreBusy: coreBusy(cores0, cores1, `cpu${s.loadCore}`),
    non2xx: result.non2xx,
    socketErrors: result.socketErrors,
    ...(result.errorDetail !== undefined ? { errorDetail: result.errorDetail } : {}),
    ...(processCpu !== undefined ? { processCpu } : {}),
  };
}

/**
 * Waits (at most 5 s) until PRIMARY and the shadow have stopped counting: a peer that fell
 * behind with its mirrors (nginx's) must not hand its backlog, and its load, to the next row.
 */
export async function quiesce(up: Upstreams): Promise<void> {
  const read = (): Promise<number[] | null> => Promise.all([up.primary.read(), up.shadow.read()]).catch(() => null);
  // By delta, not by equal readings: nginx's stub_status counts each reading itself.
  const still = (a: number[] | null, b: number[] | null): boolean =>
    a !== null && b !== null && up.primary.delta(a[0] as number, b[0] as number) === 0 && up.shadow.delta(a[1] as number, b[1] as number) === 0;
  const deadline = Date.now() + 5000;
  let last = await read();
  while (Date.now() < deadline) {
    await sleep(SETTLE_MS);
    const now = await read();
    if (still(last, now)) return;
    last = now;
  }
}

/**
 * Fresh peer → check → warm-up → rounds → peak RSS → `beforeStop` (to read what the peer itself
 * reports) → stop. Failures become null rows, never aborts.
 */
export async function measure(s: MeasureSettings, scenario: string, peer: PeerDef, load: LoadDriver, env: PeerEnv, up: Upstreams,
  beforeStop?: (running: RunningPeer) => Promise<void>): Promise<Row> {
  const { conns, streams, protocol } = load;
  const row: Row = {
    scenario, protocol, peer: peer.name, ...(peer.codec !== undefined ? { codec: peer.codec } : {}), ...(peer.workers !== undefined && peer.workers > 1 ? { workers: peer.workers } : {}),
    conns, streams, mirror: peer.mirror, rounds: [], median: medians([]), peakRssMb: null, loadavg1m: os.loadavg()[0] ?? 0,
  };
  const label = `${scenario} ${protocol} ${peer.name} c=${conns}${protocol === 'h1' ? '' : ` m=${streams}`}`;
  s.progress(`${label}: start`);
  let running: RunningPeer;
  try {
    running = await peer.start(env);
  } catch (err) {
    row.error = `start failed: ${(err as Error).message}`;
    s.progress(`${label}: ${row.error}`);
    return row;
  }
  try {
    try {
      await load.check(running.port);
    } catch (err) {
      row.error = (err as Error).message;
      s.progress(`${label}: ${row.error}; not measured`);
      return row;
    }
    await load.warmUp(running.port, s.warmup);
    await sleep(SETTLE_MS);
    for (let i = 1; i <= s.rounds; i++) {
      let r: RoundResult;
      try {
        r = await round(s, peer, running, load, up);
      } catch (err) {
        r = emptyRound((err as Error).message);
      }
      row.rounds.push(r);
      const errs = (r.non2xx ?? 0) + (r.socketErrors ?? 0);
      s.progress(
        `${label} round ${i}/${s.rounds}: ` +
          (r.error !== undefined
            ? `null (${r.error})`
            : `${fmt(r.rps)} req/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, ` +
              `${fmt(r.cpuUsPerReq, 1)} CPU µs/req` +
              (peer.mirror ? `, mirror ${fmt(r.mirrorRatio, 3)}` : '') +
              `; core ${s.peerCore} ${pct(r.peerCoreBusy)} busy (${pct(r.peerCoreIrq)} irq, ${pct(r.otherOnPeerCore)} others), core ${s.loadCore} ${pct(r.loadCoreBusy)}` +
              (errs > 0 ? `, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors` : '')),
      );
    }
    row.peakRssMb = treePeakRssMb(running.pid);
    await beforeStop?.(running);
  } finally {
    await running.stop();
    row.median = medians(row.rounds);
    await quiesce(up);
  }
  return row;
}
