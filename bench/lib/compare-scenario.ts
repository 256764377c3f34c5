import * as path from 'node:path';
import { outcomeDelta, rateMedians, summarize, type Outcomes, type RateRound, type RateRow, type SaturationRow, type SummaryLine } from './compare-report';
import { coreBusy, coreIrq, readCoreTimes } from './cores';
import { wrkDriver } from './drivers';
import { measure, type MeasureSettings, quiesce, SETTLE_MS } from './measure';
import { sidemirrorConfigPeer, type PeerDef, type PeerEnv, type RunningPeer } from './peers';
import { treeCpuSeconds } from './proc';
import { httpGetText, sleep, spawnTracked, stopProcess } from './processes';
import type { RateLoadResult } from './rate-load';
import { POLICY_NAME, sidemirrorPolicyBootstrap } from './sidemirror';
import { startJsonUpstream, type Upstream } from './upstreams';

// What shadow comparison costs the primary's client: sidemirror's mirror filter mirroring to a
// candidate without comparing (the baseline), with `compare: {}`, and with a reference cluster
// too. Each row is measured at saturation (wrk, like the other rows) and at a fixed rate below
// it (bench/peers/rate-client.ts, pinned to the load core), where latency is what the client
// sees without queueing. Three nginx upstreams answer a ~400-byte JSON order; the candidate's
// `total` differs, so every compared GET ends as `diff`.

export const BASELINE = 'sidemirror-ext-mirror';
export const COMPARE_PEERS = [BASELINE, 'sidemirror-compare', 'sidemirror-compare-ref'] as const;
export const DEFAULT_COMPARE_RATE = 1000;
/** The fixed-rate client's keep-alive connections. */
const CLIENT_CONNECTIONS = 16;

const ORDER = {
  id: 'ord-1042',
  status: 'shipped',
  customer: { id: 'c-77', name: 'Ada Lovelace', tier: 'gold' },
  items: [{ sku: 'A-100', qty: 2, price: 12.5 }, { sku: 'B-220', qty: 1, price: 40 }, { sku: 'C-310', qty: 3, price: 7.25 }],
  currency: 'EUR',
  total: 86.75,
  shipping: { method: 'express', eta_days: 2, address: { city: 'London', country: 'GB' } },
  tags: ['gift', 'priority'],
  created_at: '2024-05-01T10:00:00Z',
};
export const PRIMARY_BODY = JSON.stringify(ORDER);
export const CANDIDATE_BODY = JSON.stringify({ ...ORDER, total: 86.8 });

export interface CompareScenarioSettings {
  ms: MeasureSettings;
  conns: number[];
  rate: number;
  /** Peers to run (all three when undefined). */
  only: string[] | undefined;
  /** Cores for the load tools and upstreams, and for the peer. */
  loadCpus: string | undefined;
  peerCpus: string | undefined;
}

export interface CompareResult {
  settings: { rate: number; conns: number[]; clientConnections: number; bodyBytes: number; candidateDiffers: string; policy: string };
  saturation: SaturationRow[];
  fixedRate: RateRow[];
  summary: SummaryLine[];
}

interface CompareUpstreams {
  primary: Upstream;
  candidate: Upstream;
  reference: Upstream;
}

function comparePeer(name: string, referencePort: number): PeerDef {
  const compare = name !== BASELINE;
  return sidemirrorConfigPeer(name, true, (port, adminPort, env) =>
    sidemirrorPolicyBootstrap({ port, adminPort, primaryPort: env.primaryPort, candidatePort: env.shadowPort, compare, referencePort: name === 'sidemirror-compare-ref' ? referencePort : undefined }));
}

/** The policy's outcome counts from the proxy's admin; null without a comparing policy. */
async function readOutcomes(running: RunningPeer): Promise<Outcomes | null> {
  if (running.adminPort === undefined) return null;
  try {
    const report = JSON.parse(await httpGetText(running.adminPort, '/mirror/compare?format=json')) as { policies?: { name: string; outcomes: Outcomes }[] };
    const policy = report.policies?.find((p) => p.name === POLICY_NAME);
    return policy ? outcomeDelta(null, policy.outcomes) : null;
  } catch {
    return null;
  }
}

type RateClientResult = RateLoadResult & { elapsedS: number };

async function runRateClient(port: number, rate: number, seconds: number, cpus: string | undefined): Promise<{ result: RateClientResult | null; output: string }> {
  const script = path.join(__dirname, '..', 'peers', 'rate-client.js');
  const args = [script, '--port', String(port), '--rate', String(rate), '--seconds', String(seconds), '--connections', String(CLIENT_CONNECTIONS)];
  const p = spawnTracked(process.execPath, args, { cpus });
  // The client drains for at most 10 s after its schedule ends.
  const code = await Promise.race([p.exited, sleep((seconds + 20) * 1000).then(() => 'overrun')]);
  if (code === 'overrun') await stopProcess(p, 500);
  const output = p.stdout();
  const last = output.trim().split('\n').pop() ?? '';
  try {
    return { result: code === 0 ? (JSON.parse(last) as RateClientResult) : null, output };
  } catch {
    return { result: null, output };
  }
}

function failedRound(offeredRps: number, error: string): RateRound {
  return { offeredRps, sent: null, ok: null, non2xx: null, errors: null, skipped: null, achievedRps: null, p50Ms: null, p99Ms: null, cpuUsPerReq: null,
    primaryRequests: null, candidateRequests: null, referenceRequests: null, peerCoreBusy: null, otherOnPeerCore: null, loadCoreBusy: null, error };
}

async function rateRound(s: CompareScenarioSettings, running: RunningPeer, up: CompareUpstreams): Promise<RateRound> {
  const ups = [up.primary, up.candidate, up.reference];
  const cpu0 = treeCpuSeconds(running.pid);
  const before = await Promise.all(ups.map((u) => u.read()));
  const cores0 = readCoreTimes();
  const t0 = performance.now();
  const { result, output } = await runRateClient(running.port, s.rate, s.ms.duration, s.loadCpus);
  const cores1 = readCoreTimes();
  const window = (performance.now() - t0) / 1000;
  const cpuDuringLoad = treeCpuSeconds(running.pid) - cpu0;
  await sleep(SETTLE_MS);
  const cpu = treeCpuSeconds(running.pid) - cpu0;
  const after = await Promise.all(ups.map((u) => u.read()));
  if (!result) return failedRound(s.rate, `rate client failed: ${output.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
  const [primaryRequests, candidateRequests, referenceRequests] = ups.map((u, i) => u.delta(before[i] as number, after[i] as number));
  const peerCore = `cpu${s.ms.peerCore}`;
  const peerCoreBusy = coreBusy(cores0, cores1, peerCore);
  const irq = coreIrq(cores0, cores1, peerCore) ?? 0;
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
    primaryRequests: primaryRequests ?? null,
    candidateRequests: candidateRequests ?? null,
    referenceRequests: referenceRequests ?? null,
    peerCoreBusy,
    otherOnPeerCore: peerCoreBusy === null || !s.ms.pinned ? null : Math.max(0, peerCoreBusy - cpuDuringLoad / window - irq),
    loadCoreBusy: coreBusy(cores0, cores1, `cpu${s.ms.loadCore}`),
  };
}

const fmt = (v: number | null, d = 0): string => (v === null ? '-' : v.toFixed(d));
const pct = (v: number | null): string => (v === null ? '-' : `${Math.round(v * 100)}%`);

/** Fresh peer → wrk warm-up → quiet → a round at the rate, unmeasured → rounds at the fixed rate → outcomes → stop. */
async function rateRow(s: CompareScenarioSettings, peer: PeerDef, env: PeerEnv, up: CompareUpstreams): Promise<RateRow> {
  const row: RateRow = { peer: peer.name, offeredRps: s.rate, clientConnections: CLIENT_CONNECTIONS, rounds: [], median: rateMedians([]), outcomes: null };
  const label = `compare h1 ${peer.name} @${s.rate} req/s`;
  s.ms.progress(`${label}: start`);
  let running: RunningPeer;
  try {
    running = await peer.start(env);
  } catch (err) {
    row.error = `start failed: ${(err as Error).message}`;
    s.ms.progress(`${label}: ${row.error}`);
    return row;
  }
  const quiet = { primary: up.primary, shadow: up.candidate };
  try {
    await wrkDriver(s.conns[0] ?? 16, s.loadCpus).warmUp(running.port, s.ms.warmup);
    await quiesce(quiet);
    // An unmeasured round at the rate: after wrk's burst V8 shrinks its heap (a mark-compact or
    // two), which would land in the first measured round.
    await runRateClient(running.port, s.rate, s.ms.duration, s.loadCpus);
    const outcomes0 = await readOutcomes(running);
    for (let i = 1; i <= s.ms.rounds; i++) {
      const r = await rateRound(s, running, up).catch((err: unknown) => failedRound(s.rate, (err as Error).message));
      row.rounds.push(r);
      const errs = (r.non2xx ?? 0) + (r.errors ?? 0) + (r.skipped ?? 0);
      s.ms.progress(`${label} round ${i}/${s.ms.rounds}: ` + (r.error !== undefined ? `null (${r.error})`
        : `${fmt(r.achievedRps)} req/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, ${fmt(r.cpuUsPerReq, 1)} CPU µs/req; ` +
          `primary ${r.primaryRequests}, candidate ${r.candidateRequests}, reference ${r.referenceRequests}; ` +
          `core ${s.ms.peerCore} ${pct(r.peerCoreBusy)} busy (${pct(r.otherOnPeerCore)} others), core ${s.ms.loadCore} ${pct(r.loadCoreBusy)}` +
          (errs > 0 ? `; ${r.non2xx} non-2xx, ${r.errors} errors, ${r.skipped} skipped` : '')));
    }
    row.outcomes = outcomeDelta(outcomes0, await readOutcomes(running));
  } finally {
    await running.stop();
    row.median = rateMedians(row.rounds);
    await quiesce(quiet);
  }
  return row;
}

async function startUpstreams(cpus: string | undefined): Promise<CompareUpstreams> {
  const started: Upstream[] = [];
  try {
    for (const [label, body] of [['cmp-primary', PRIMARY_BODY], ['cmp-candidate', CANDIDATE_BODY], ['cmp-reference', PRIMARY_BODY]] as const) {
      started.push(await startJsonUpstream(label, body, cpus));
    }
  } catch (err) {
    await Promise.all(started.map((u) => u.stop()));
    throw err;
  }
  const [primary, candidate, reference] = started as [Upstream, Upstream, Upstream];
  return { primary, candidate, reference };
}

export async function runCompareScenario(s: CompareScenarioSettings): Promise<CompareResult> {
  const names = COMPARE_PEERS.filter((n) => s.only === undefined || s.only.includes(n));
  const result: CompareResult = {
    settings: { rate: s.rate, conns: s.conns, clientConnections: CLIENT_CONNECTIONS, bodyBytes: Buffer.byteLength(PRIMARY_BODY), candidateDiffers: 'body.total', policy: POLICY_NAME },
    saturation: [],
    fixedRate: [],
    summary: [],
  };
  if (names.length === 0) return result;
  const up = await startUpstreams(s.loadCpus);
  try {
    s.ms.progress(`compare upstreams: primary :${up.primary.port}, candidate :${up.candidate.port}, reference :${up.reference.port} (${result.settings.bodyBytes}-byte JSON)`);
    const env: PeerEnv = { primaryPort: up.primary.port, primaryPid: up.primary.pid, shadowPort: up.candidate.port, cpus: s.peerCpus };
    for (const name of names) {
      const peer = comparePeer(name, up.reference.port);
      for (const conns of s.conns) {
        let outcomes: Outcomes | null = null;
        const row = await measure(s.ms, 'compare', peer, wrkDriver(conns, s.loadCpus), env, { primary: up.primary, shadow: up.candidate }, async (running) => {
          await sleep(SETTLE_MS); // comparisons still waiting for their shadows end first
          outcomes = await readOutcomes(running);
        });
        result.saturation.push({ ...row, outcomes });
      }
      result.fixedRate.push(await rateRow(s, peer, env, up));
    }
  } finally {
    await Promise.all([up.primary.stop(), up.candidate.stop(), up.reference.stop()]);
  }
  result.summary = summarize(BASELINE, COMPARE_PEERS, result.saturation, result.fixedRate);
  return result;
}
