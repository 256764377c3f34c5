import * as os from 'node:os';
import { coreBusy, coreIrq, readCoreTimes } from './cores';
import { wrkDriver } from './drivers';
import { type MeasureSettings, quiesce, SETTLE_MS, type Upstreams } from './measure';
import type { PeerDef, PeerEnv, RunningPeer } from './peers';
import { treeCpuSeconds } from './proc';
import { sleep } from './processes';
import { rateMedians, type RateRound, type RateRow } from './rate-report';
import { runRateClient } from './rate-runner';
import type { Upstream } from './upstreams';

// One fixed-rate row: a fresh peer, a wrk warm-up, one unmeasured round at the rate, the measured
// rounds at the rate. Below saturation the latency is what a sidecar adds, not queueing.

/** The fixed-rate client's keep-alive connections. */
export const RATE_CLIENT_CONNECTIONS = 16;

export interface RateSettings {
  ms: MeasureSettings;
  rate: number;
  /** wrk connections for the warm-up. */
  warmupConns: number;
  loadCpus: string | undefined;
}

export interface RateTargets {
  /** Every upstream whose requests are counted, by name; `primary` is the one the peer forwards to. */
  counted: Record<string, Upstream>;
  /** The counted upstream whose count over primary's is the mirror ratio (mirror peers). */
  mirrorTarget?: string;
  /** The two whose counts must stop before the next row starts. */
  quiet: Upstreams;
}

export interface RateHooks {
  /** After the warm-up and the unmeasured round, before the measured rounds. */
  beforeRounds?: (running: RunningPeer) => Promise<void>;
  /** After the measured rounds, before the peer stops. */
  beforeStop?: (running: RunningPeer) => Promise<void>;
}

export function failedRateRound(offeredRps: number, error: string): RateRound {
  return { offeredRps, sent: null, ok: null, non2xx: null, errors: null, skipped: null, achievedRps: null, p50Ms: null, p99Ms: null, cpuUsPerReq: null,
    upstreamRequests: null, mirrorRatio: null, peerCoreBusy: null, otherOnPeerCore: null, loadCoreBusy: null, error };
}

async function rateRound(s: RateSettings, peer: PeerDef, running: RunningPeer, t: RateTargets): Promise<RateRound> {
  const names = Object.keys(t.counted);
  const ups = names.map((n) => t.counted[n] as Upstream);
  const cpu0 = treeCpuSeconds(running.pid);
  const before = await Promise.all(ups.map((u) => u.read()));
  const cores0 = readCoreTimes();
  const t0 = performance.now();
  const { result, output } = await runRateClient(running.port, s.rate, s.ms.duration, RATE_CLIENT_CONNECTIONS, s.loadCpus);
  const cores1 = readCoreTimes();
  const window = (performance.now() - t0) / 1000;
  const cpuDuringLoad = treeCpuSeconds(running.pid) - cpu0;
  await sleep(SETTLE_MS);
  const cpu = treeCpuSeconds(running.pid) - cpu0;
  const after = await Promise.all(ups.map((u) => u.read()));
  if (!result) return failedRateRound(s.rate, `rate client failed: ${output.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
  const counts: Record<string, number> = {};
  names.forEach((n, i) => (counts[n] = (ups[i] as Upstream).delta(before[i] as number, after[i] as number)));
  const primary = counts.primary ?? 0;
  const mirrored = t.mirrorTarget !== undefined ? counts[t.mirrorTarget] : undefined;
  const peerCore = `cpu${s.ms.peerCore}`;
  const peerCoreBusy = coreBusy(cores0, cores1, peerCore);
  const irq = coreIrq(cores0, cores1, peerCore) ?? 0;
  const own = peer.onPeerCore === false ? 0 : cpuDuringLoad / window;
  return {
    offeredRps: s.rate,
    sent: result.sent,
    ok: result.ok,
    non2xx: result.non2xx,
    errors: result.errors,
    skipped: result.skipped,
    achievedRps: result.elapsedS > 0 ? result.ok / result.elapsedS : null,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    cpuUsPerReq: result.ok > 0 ? (cpu * 1e6) / result.ok : null,
    upstreamRequests: counts,
    mirrorRatio: peer.mirror && mirrored !== undefined && primary > 0 ? mirrored / primary : null,
    peerCoreBusy,
    otherOnPeerCore: peerCoreBusy === null || !s.ms.pinned ? null : Math.max(0, peerCoreBusy - own - irq),
    loadCoreBusy: coreBusy(cores0, cores1, `cpu${s.ms.loadCore}`),
  };
}

const fmt = (v: number | null, d = 0): string => (v === null ? '-' : v.toFixed(d));
const pct = (v: number | null): string => (v === null ? '-' : `${Math.round(v * 100)}%`);

/** Fresh peer → wrk warm-up → quiet → a round at the rate, unmeasured → rounds at the rate → stop. Failures become null rows. */
export async function measureAtRate(s: RateSettings, scenario: string, peer: PeerDef, env: PeerEnv, t: RateTargets, hooks: RateHooks = {}): Promise<RateRow> {
  const row: RateRow = {
    scenario, peer: peer.name, ...(peer.codec !== undefined ? { codec: peer.codec } : {}), mirror: peer.mirror, offeredRps: s.rate, clientConnections: RATE_CLIENT_CONNECTIONS,
    rounds: [], median: rateMedians([]), loadavg1m: os.loadavg()[0] ?? 0,
  };
  const label = `${scenario} h1 ${peer.name} @${s.rate} req/s`;
  s.ms.progress(`${label}: start`);
  let running: RunningPeer;
  try {
    running = await peer.start(env);
  } catch (err) {
    row.error = `start failed: ${(err as Error).message}`;
    s.ms.progress(`${label}: ${row.error}`);
    return row;
  }
  try {
    await wrkDriver(s.warmupConns, s.loadCpus).warmUp(running.port, s.ms.warmup);
    await quiesce(t.quiet);
    // An unmeasured round at the rate: after wrk's burst V8 shrinks its heap (a mark-compact or
    // two), which would land in the first measured round.
    await runRateClient(running.port, s.rate, s.ms.duration, RATE_CLIENT_CONNECTIONS, s.loadCpus);
    await hooks.beforeRounds?.(running);
    for (let i = 1; i <= s.ms.rounds; i++) {
      const r = await rateRound(s, peer, running, t).catch((err: unknown) => failedRateRound(s.rate, (err as Error).message));
      row.rounds.push(r);
      const errs = (r.non2xx ?? 0) + (r.errors ?? 0) + (r.skipped ?? 0);
      const counts = Object.entries(r.upstreamRequests ?? {}).map(([k, v]) => `${k} ${v}`).join(', ');
      s.ms.progress(`${label} round ${i}/${s.ms.rounds}: ` + (r.error !== undefined ? `null (${r.error})`
        : `${fmt(r.achievedRps)} req/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, ${fmt(r.cpuUsPerReq, 1)} CPU µs/req; ${counts}; ` +
          `core ${s.ms.peerCore} ${pct(r.peerCoreBusy)} busy (${pct(r.otherOnPeerCore)} others), core ${s.ms.loadCore} ${pct(r.loadCoreBusy)}` +
          (errs > 0 ? `; ${r.non2xx} non-2xx, ${r.errors} errors, ${r.skipped} skipped` : '')));
    }
    await hooks.beforeStop?.(running);
  } finally {
    await running.stop();
    row.median = rateMedians(row.rounds);
    await quiesce(t.quiet);
  }
  return row;
}
