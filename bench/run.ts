#!/usr/bin/env node
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runRegexBench } from './regex';
import { summaryTable } from './lib/compare-report';
import { BASELINE, type CompareResult, runCompareScenario } from './lib/compare-scenario';
import { h2loadDriver, type LoadDriver, type Protocol, wrkDriver } from './lib/drivers';
import { checkGoals, goalsTable } from './lib/goals';
import { grpcUnaryRequest, H2C_GET } from './lib/h2-requests';
import { machineLines, probeMachine } from './lib/machine-probe';
import { measure, type MeasureSettings, SETTLE_MS } from './lib/measure';
import { type MultiCoreResult, multiCoreTable, runMultiCore } from './lib/multi-core';
import * as peers from './lib/peers';
import type { PeerDef, PeerEnv } from './lib/peers';
import { cleanupAll, makeTempDir, which } from './lib/processes';
import { measureAtRate, type RateSettings } from './lib/rate-measure';
import { rateTable, type RateRow } from './lib/rate-report';
import { table, type Row } from './lib/report';
import { headlineConns, parseSettings, type Settings, USAGE } from './lib/settings';
import { startGrpcUpstream, startH2cUpstream, startNginxShadow, startPrimary, startSlowShadow, type Upstream } from './lib/upstreams';

// `npm run bench`: sidemirror against nginx and node-http-proxy, with and without mirroring, with
// a fast and a slow (2 s) shadow, over HTTP/1.1 (wrk), the fast-shadow peers also at a fixed
// offered rate below saturation; then h2c GET and gRPC unary (h2load) with a fast shadow; then
// what shadow comparison costs (bench/lib/compare-scenario.ts); optionally sidemirror at 1, 2, 4
// workers. Peers run on core 0; the load generator and the upstreams on core 1. The machine is
// probed first and the goals of issue 13 checked last.

const NOISE_LIMIT = 0.1; // share of the peer's core used by others before a round is flagged
const PEER_CORE = '0';
const LOAD_CORE = '1'; // wrk, h2load, the rate client, PRIMARY, the shadows

const started = Date.now();
function progress(msg: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stdout.write(`[${s}s] ${msg}\n`);
}

/**
 * The rows of one HTTP/2 protocol: its own PRIMARY and shadow (on the load core), each peer at
 * each h2load load point, a fresh peer per row as for HTTP/1.1.
 */
async function fastShadowRows(protocol: Protocol, list: readonly PeerDef[], drivers: () => LoadDriver[], start: (label: string) => Promise<Upstream>,
  ms: MeasureSettings, peerCpus: string | undefined): Promise<Row[]> {
  if (list.length === 0) return [];
  const rows: Row[] = [];
  const primary = await start(`${protocol}-primary`);
  let shadow: Upstream | undefined;
  try {
    shadow = await start(`${protocol}-shadow`);
    progress(`${protocol} upstreams: primary :${primary.port}, shadow :${shadow.port}`);
    const env: PeerEnv = { primaryPort: primary.port, primaryPid: primary.pid, shadowPort: shadow.port, cpus: peerCpus };
    for (const peer of list) {
      for (const driver of drivers()) rows.push(await measure(ms, 'fast-shadow', peer, driver, env, { primary, shadow }));
    }
  } finally {
    await Promise.all([primary.stop(), shadow?.stop()]);
  }
  return rows;
}

function resultsDir(): string {
  // dist/bench/run.js → <repo>/bench/results
  return path.join(__dirname, '..', '..', 'bench', 'results');
}

/** The cores the multi-core mode gives the proxy: all but the load core (the peer core alone on two cores). */
function multiCoreCpus(s: Settings): string | undefined {
  if (!s.pinned) return undefined;
  return os.cpus().map((_, i) => String(i)).filter((c) => c !== LOAD_CORE).join(',');
}

/** One line per row whose rounds had other work on the peer's core. */
function noisyRows(rows: Row[], rate: RateRow[]): string[] {
  const noisy = rows.filter((r) => r.rounds.some((x) => (x.otherOnPeerCore ?? 0) > NOISE_LIMIT))
    .map((r) => `${r.scenario} ${r.protocol} ${r.peer} c=${r.conns}${r.protocol === 'h1' ? '' : ` m=${r.streams}`}`);
  for (const r of rate) if (r.rounds.some((x) => (x.otherOnPeerCore ?? 0) > NOISE_LIMIT)) noisy.push(`${r.scenario} h1 ${r.peer} @${r.offeredRps} req/s`);
  return noisy;
}

async function main(): Promise<number> {
  let s: Settings;
  try {
    s = parseSettings();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!which('nginx') || (s.protocols.includes('h1') && !which('wrk'))) {
    process.stderr.write('nginx and wrk are needed: apt-get install -y nginx wrk\n');
    return 2;
  }
  if (!s.pinned) progress('warning: taskset or a second core is missing; nothing is pinned');
  if (process.env.SIDEMIRROR_HTTP1_CODEC !== undefined) {
    progress(`note: SIDEMIRROR_HTTP1_CODEC=${process.env.SIDEMIRROR_HTTP1_CODEC} is ignored: each sidemirror row is started with its own codec (--codecs)`);
  }
  const load = s.pinned ? LOAD_CORE : undefined;
  const peerCpus = s.pinned ? PEER_CORE : undefined;
  const ms: MeasureSettings = { rounds: s.rounds, duration: s.duration, warmup: s.warmup, pinned: s.pinned, peerCore: PEER_CORE, loadCore: LOAD_CORE, progress };
  const want = (p: PeerDef): boolean => s.only === undefined || s.only.includes(p.name);
  const h1 = s.protocols.includes('h1');
  const c2 = s.withConcurrency ? [peers.sidemirrorMirrorC2] : [];
  const sidemirrors = s.codecs.flatMap((c) => peers.sidemirrorH1Peers(c));
  const fastPeers = h1 ? [peers.direct, peers.nginxProxy, peers.nginxMirror, peers.httpProxyMirror, ...sidemirrors, ...c2].filter(want) : [];
  const slowPeers = h1 && s.slow ? [peers.nginxMirror, peers.httpProxyMirror, peers.sidemirrorMirror, ...c2].filter(want) : [];
  const notes: string[] = [];
  const h2Wanted = s.protocols.filter((p) => p !== 'h1');
  const h2Protocols = which('h2load') ? h2Wanted : [];
  if (h2Wanted.length > h2Protocols.length) notes.push(`${h2Wanted.join(' and ')} rows skipped: h2load is missing (apt-get install -y nghttp2-client)`);
  for (const n of notes) progress(`note: ${n}`);

  progress(`settings: ${s.rounds} round(s) x ${s.duration} s, warm-up ${s.warmup} s, conns ${s.conns.join(',')}, ` +
    `${s.rate === null ? 'no fixed rate' : `fixed rate ${s.rate} req/s`}, codecs ${s.codecs.join(',')}; slow shadow ${s.slowDelayMs} ms at c=${s.slowConns}; ` +
    `protocols ${s.protocols.join(',')}, h2load ${s.h2Load.map((l) => `${l.conns}x${l.streams}`).join(',')}` +
    `${s.concurrencyMode ? `; multi-core workers ${s.concurrencyMode.join(',')}` : ''}`);
  const machine = probeMachine(peerCpus ?? null, h2Protocols.length > 0);
  for (const line of machineLines(machine).split('\n')) progress(line);

  const rows: Row[] = [];
  const rateRows: RateRow[] = [];
  let compare: CompareResult | null = null;
  let multiCore: MultiCoreResult | null = null;
  const h1Upstreams: Upstream[] = [];
  try {
    const primary = h1 ? await startPrimary(load) : undefined;
    const fast = h1 ? await startNginxShadow(load, s.emptyShadowBody) : undefined;
    const slow = h1 && s.slow ? await startSlowShadow(s.slowDelayMs, load, s.emptyShadowBody) : undefined;
    for (const u of [primary, fast, slow]) if (u) h1Upstreams.push(u);
    if (primary && fast) {
      progress(`upstreams: primary :${primary.port}, shadow :${fast.port}${slow ? `, slow shadow :${slow.port}` : ''}`);
      const fastEnv: PeerEnv = { primaryPort: primary.port, primaryPid: primary.pid, shadowPort: fast.port, cpus: peerCpus };
      const up = { primary, shadow: fast };
      const rs: RateSettings | null = s.rate === null ? null : { ms, rate: s.rate, warmupConns: s.conns[0] ?? 16, loadCpus: load };
      // Peer by peer, its saturation rows then its fixed-rate row, so a drift in the machine's
      // load over the run lands on peers, not on one kind of figure.
      // direct is PRIMARY itself, which lives on the load core: its CPU is measured there.
      for (const peer of fastPeers) {
        for (const conns of s.conns) rows.push(await measure(ms, 'fast-shadow', peer, wrkDriver(conns, load), fastEnv, up));
        if (rs) rateRows.push(await measureAtRate(rs, 'fast-shadow', peer, fastEnv, { counted: { primary, shadow: fast }, mirrorTarget: 'shadow', quiet: up }));
      }
    }
    const logDir = h2Protocols.length > 0 ? makeTempDir('h2load') : '';
    for (const protocol of h2Protocols) {
      const h2 = protocol === 'h2c'
        ? { peers: peers.h2cPeers, request: H2C_GET, start: startH2cUpstream }
        : { peers: peers.grpcPeers, request: grpcUnaryRequest(logDir), start: startGrpcUpstream };
      const drivers = (): LoadDriver[] => s.h2Load.map((l) => h2loadDriver({ protocol, request: h2.request, ...l, logDir, cpus: load }));
      rows.push(...(await fastShadowRows(protocol, h2.peers.filter(want), drivers, (label) => h2.start(label, load), ms, peerCpus)));
    }
    if (primary && slow) {
      const slowEnv: PeerEnv = { primaryPort: primary.port, primaryPid: primary.pid, shadowPort: slow.port, cpus: peerCpus };
      for (const peer of slowPeers) rows.push(await measure(ms, 'slow-shadow', peer, wrkDriver(s.slowConns, load), slowEnv, { primary, shadow: slow }));
    }
    if (primary && fast && s.concurrencyMode) {
      const env: PeerEnv = { primaryPort: primary.port, primaryPid: primary.pid, shadowPort: fast.port, cpus: multiCoreCpus(s) };
      multiCore = await runMultiCore({ ms, workers: s.concurrencyMode, conns: headlineConns(s.conns), env, up: { primary, shadow: fast }, loadCpus: load });
    }
    if (h1 && s.compare) compare = await runCompareScenario({ ms, conns: s.conns, rate: s.compareRate, only: s.only, loadCpus: load, peerCpus });
  } finally {
    await Promise.all(h1Upstreams.map((u) => u.stop()));
  }

  const goals = checkGoals({ rows, rate: rateRows, otherRows: compare?.saturation ?? [], conns: headlineConns(s.conns), slowConns: s.slowConns });
  const out: string[] = ['', machineLines(machine)];
  if (rows.length > 0) out.push(table(rows));
  if (rateRows.length > 0) out.push(rateTable(rateRows));
  if (multiCore && multiCore.rows.length > 0) out.push(multiCoreTable(multiCore));
  for (const n of notes) out.push(`note: ${n}`);
  if (compare && compare.saturation.length + compare.fixedRate.length > 0) {
    out.push(table(compare.saturation), summaryTable(compare.summary, compare.settings.rate, BASELINE));
  }
  out.push(goalsTable(goals, s.rounds));
  process.stdout.write(`${out.join('\n\n')}\n\n`);
  // The cost of one config regex match on the hot path (RE2 semantics, linear time), in-process.
  const regex = runRegexBench(false, progress);
  process.stdout.write(`regex match cost (RE2 via re2js vs JavaScript RegExp):\n${regex.table}\n\n`);
  const noisy = noisyRows([...rows, ...(compare?.saturation ?? []), ...(multiCore?.rows.map((r) => r.row) ?? [])], [...rateRows, ...(compare?.fixedRate ?? [])]);
  const measured = rows.length + rateRows.length + (compare ? compare.saturation.length + compare.fixedRate.length : 0) + (multiCore?.rows.length ?? 0);
  if (noisy.length > 0) {
    const which = noisy.length === measured ? `every row (${measured})` : `${noisy.length} of ${measured} rows: ${noisy.join(', ')}`;
    process.stdout.write(`warning: other processes took > ${NOISE_LIMIT * 100}% of core ${PEER_CORE} during some rounds of ${which}; rerun on a quiet machine\n\n`);
  }
  const report = {
    machine,
    date: new Date().toISOString(),
    settings: {
      ...s,
      settleMs: SETTLE_MS,
      pinning: s.pinned ? { peer: `core ${PEER_CORE}`, wrkAndUpstreams: `core ${LOAD_CORE}`, multiCorePeer: multiCoreCpus(s) } : 'none',
      wrk: `wrk -t1 -c{conns} -d{duration}s --timeout 10s --latency`,
      h2load: 'h2load -t 1 -c {conns} -m {streams} -n {rate of the previous run x duration} --log-file … [gRPC: -H content-type: application/grpc -H te: trailers -d <framed message>] http://127.0.0.1:{port}{path}',
      rateClient: 'node dist/bench/peers/rate-client.js --rate {rate} --seconds {duration} --connections 16 (1 ms schedule tick)',
    },
    notes,
    rows,
    fixedRate: { rate: s.rate, rows: rateRows },
    multiCore,
    compare,
    goals,
    regex: { settings: regex.settings, rows: regex.rows },
    totalSeconds: (Date.now() - started) / 1000,
  };
  const dir = resultsDir();
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${report.date.replace(/[:.]/g, '-')}.json`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  fs.writeFileSync(file, json);
  fs.writeFileSync(path.join(dir, 'latest.json'), json);
  progress(`results: ${path.relative(process.cwd(), file) || file} (and latest.json)`);
  return 0;
}

process.on('exit', cleanupAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping every process the bench started\n`);
    cleanupAll();
    process.exit(130);
  });
}

main().then(
  (code) => {
    cleanupAll();
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    cleanupAll();
    process.exit(1);
  },
);
