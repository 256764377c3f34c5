import { type CompareRateRow, outcomeDelta, summarize, type Outcomes, type SaturationRow, type SummaryLine } from './compare-report';
import { wrkDriver } from './drivers';
import { measure, type MeasureSettings, SETTLE_MS } from './measure';
import { sidemirrorConfigPeer, type PeerDef, type PeerEnv, type RunningPeer } from './peers';
import { httpGetText, sleep } from './processes';
import { measureAtRate, RATE_CLIENT_CONNECTIONS, type RateSettings } from './rate-measure';
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
  fixedRate: CompareRateRow[];
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

/** A fixed-rate row on a fresh proxy, with the outcomes its policy counted during the measured rounds. */
async function rateRow(s: CompareScenarioSettings, peer: PeerDef, env: PeerEnv, up: CompareUpstreams): Promise<CompareRateRow> {
  let outcomes0: Outcomes | null = null;
  let outcomes: Outcomes | null = null;
  const rs: RateSettings = { ms: s.ms, rate: s.rate, warmupConns: s.conns[0] ?? 16, loadCpus: s.loadCpus };
  const targets = { counted: { primary: up.primary, candidate: up.candidate, reference: up.reference }, mirrorTarget: 'candidate', quiet: { primary: up.primary, shadow: up.candidate } };
  const row = await measureAtRate(rs, 'compare', peer, env, targets, {
    beforeRounds: async (running) => void (outcomes0 = await readOutcomes(running)),
    beforeStop: async (running) => void (outcomes = outcomeDelta(outcomes0, await readOutcomes(running))),
  });
  return { ...row, outcomes };
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
    settings: { rate: s.rate, conns: s.conns, clientConnections: RATE_CLIENT_CONNECTIONS, bodyBytes: Buffer.byteLength(PRIMARY_BODY), candidateDiffers: 'body.total', policy: POLICY_NAME },
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
