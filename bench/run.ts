#!/usr/bin/env node
import { runRegexBench } from './regex';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as peers from './lib/peers';
import type { PeerDef, PeerEnv, RunningPeer } from './lib/peers';
import { treeCpuSeconds, treePeakRssMb } from './lib/proc';
import { cleanupAll, firstLine, sleep, which } from './lib/processes';
import { medians, table, type RoundResult, type Row } from './lib/report';
import { startNginxShadow, startPrimary, startSlowShadow, type Shadow, type Upstream } from './lib/upstreams';
import { coreBusy, coreIrq, readCoreTimes } from './lib/cores';
import { runWrk } from './lib/wrk';

// `npm run bench`: sidemirror against nginx and node-http-proxy, with and without mirroring, with
// a fast and a slow (2 s) shadow. Peers run on core 0; wrk and the upstreams on core 1.

const USAGE = `Usage: node dist/bench/run.js [options]
  --rounds N           measured rounds per peer and connection count (default 3)
  --duration S         seconds per round (default 3)
  --warmup S           warm-up seconds before the rounds (default 1)
  --conns 16,64        connection counts for the fast-shadow scenario (default 16,64)
  --slow-conns N       connections for the slow-shadow scenario (default 64)
  --slow-delay-ms MS   delay of the slow shadow (default 2000)
  --only a,b           run only these peers (e.g. sidemirror-mirror,nginx-mirror)
  --no-slow            skip the slow-shadow scenario
  --empty-shadow-body  shadows answer an empty 200 instead of "ok\n" (nginx's mirror can only
                       keep shadow connections alive when the response has no body)
  --with-concurrency   also run sidemirror-mirror-c2 (sidemirror --concurrency 2);
                       BENCH_WITH_CONCURRENCY=1 does the same
`;

const SETTLE_MS = 300; // after each wrk run, so mirrored requests still in flight are counted
const NOISE_LIMIT = 0.1; // share of the peer's core used by others before a round is flagged
const PEER_CORE = '0';
const LOAD_CORE = '1'; // wrk, PRIMARY, the shadows

interface Upstreams {
  primary: Upstream;
  shadow: Shadow;
}

interface Settings {
  rounds: number;
  duration: number;
  warmup: number;
  conns: number[];
  slowConns: number;
  slowDelayMs: number;
  only: string[] | undefined;
  slow: boolean;
  emptyShadowBody: boolean;
  withConcurrency: boolean;
  pinned: boolean;
}

function parseSettings(): Settings {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      conns: { type: 'string', default: '16,64' },
      'slow-conns': { type: 'string', default: '64' },
      'slow-delay-ms': { type: 'string', default: '2000' },
      only: { type: 'string' },
      'no-slow': { type: 'boolean', default: false },
      'empty-shadow-body': { type: 'boolean', default: false },
      'with-concurrency': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, not "${v}"`);
    return n;
  };
  const pinned = which('taskset') && os.cpus().length >= 2;
  return {
    rounds: int('rounds', values.rounds),
    duration: int('duration', values.duration),
    warmup: int('warmup', values.warmup),
    conns: values.conns.split(',').map((c) => int('conns', c.trim())),
    slowConns: int('slow-conns', values['slow-conns']),
    slowDelayMs: int('slow-delay-ms', values['slow-delay-ms']),
    only: values.only?.split(',').map((s) => s.trim()),
    slow: !values['no-slow'],
    emptyShadowBody: values['empty-shadow-body'],
    withConcurrency: values['with-concurrency'] || process.env.BENCH_WITH_CONCURRENCY === '1',
    pinned,
  };
}

const started = Date.now();
function progress(msg: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stdout.write(`[${s}s] ${msg}\n`);
}

const fmt = (v: number | null, d = 0): string => (v === null ? '-' : v.toFixed(d));
const pct = (v: number | null): string => (v === null ? '-' : `${Math.round(v * 100)}%`);

function emptyRound(error: string): RoundResult {
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
 * One measured round: wrk for `duration` s; around it, the CPU time of the peer's process tree,
 * the requests PRIMARY and the shadow received (read after a settle pause, so mirrored requests
 * still in flight when wrk stops are counted) and how busy both cores were.
 */
async function round(s: Settings, peer: PeerDef, running: RunningPeer, conns: number, up: Upstreams): Promise<RoundResult> {
  const cpu0 = treeCpuSeconds(running.pid);
  const [primary0, shadow0] = await Promise.all([up.primary.read(), up.shadow.read()]);
  const cores0 = readCoreTimes();
  const t0 = performance.now();
  const { result, output } = await runWrk({ port: running.port, conns, seconds: s.duration, cpus: s.pinned ? LOAD_CORE : undefined });
  const cores1 = readCoreTimes();
  const wrkWindow = (performance.now() - t0) / 1000;
  const cpuDuringWrk = treeCpuSeconds(running.pid) - cpu0;
  await sleep(SETTLE_MS);
  const cpu = treeCpuSeconds(running.pid) - cpu0;
  const [primary1, shadow1] = await Promise.all([up.primary.read(), up.shadow.read()]);
  if (!result) return emptyRound(`wrk failed: ${output.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
  if (result.rps === 0 || result.requests === 0) return emptyRound('0 requests/sec');
  const primaryRequests = up.primary.delta(primary0, primary1);
  const shadowRequests = up.shadow.delta(shadow0, shadow1);
  const peerCoreBusy = coreBusy(cores0, cores1, `cpu${PEER_CORE}`);
  const peerCoreIrq = coreIrq(cores0, cores1, `cpu${PEER_CORE}`);
  // What the peer's core spent on neither the peer nor the network stack: other work (noise).
  const ownShare = (peer.onPeerCore === false ? 0 : cpuDuringWrk / wrkWindow) + (peerCoreIrq ?? 0);
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
    loadCoreBusy: coreBusy(cores0, cores1, `cpu${LOAD_CORE}`),
    non2xx: result.non2xx,
    socketErrors: result.socketErrors,
  };
}

/** Fresh peer → warm-up → rounds → peak RSS → stop. Failures become null rows, never aborts. */
async function measure(s: Settings, scenario: string, peer: PeerDef, conns: number, env: PeerEnv, up: Upstreams): Promise<Row> {
  const row: Row = { scenario, peer: peer.name, conns, mirror: peer.mirror, rounds: [], median: medians([]), peakRssMb: null, loadavg1m: os.loadavg()[0] ?? 0 };
  progress(`${scenario} ${peer.name} c=${conns}: start`);
  let running: RunningPeer;
  try {
    running = await peer.start(env);
  } catch (err) {
    row.error = `start failed: ${(err as Error).message}`;
    progress(`${scenario} ${peer.name} c=${conns}: ${row.error}`);
    return row;
  }
  try {
    await runWrk({ port: running.port, conns, seconds: s.warmup, cpus: s.pinned ? LOAD_CORE : undefined });
    await sleep(SETTLE_MS);
    for (let i = 1; i <= s.rounds; i++) {
      let r: RoundResult;
      try {
        r = await round(s, peer, running, conns, up);
      } catch (err) {
        r = emptyRound((err as Error).message);
      }
      row.rounds.push(r);
      const errs = (r.non2xx ?? 0) + (r.socketErrors ?? 0);
      progress(
        `${scenario} ${peer.name} c=${conns} round ${i}/${s.rounds}: ` +
          (r.error !== undefined
            ? `null (${r.error})`
            : `${fmt(r.rps)} req/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, ` +
              `${fmt(r.cpuUsPerReq, 1)} CPU µs/req` +
              (peer.mirror ? `, mirror ${fmt(r.mirrorRatio, 3)}` : '') +
              `; core ${PEER_CORE} ${pct(r.peerCoreBusy)} busy (${pct(r.peerCoreIrq)} irq, ${pct(r.otherOnPeerCore)} others), core ${LOAD_CORE} ${pct(r.loadCoreBusy)}` +
              (errs > 0 ? `, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors` : '')),
      );
    }
    row.peakRssMb = treePeakRssMb(running.pid);
  } finally {
    await running.stop();
  }
  row.median = medians(row.rounds);
  return row;
}

function resultsDir(): string {
  // dist/bench/run.js → <repo>/bench/results
  return path.join(__dirname, '..', '..', 'bench', 'results');
}

async function main(): Promise<number> {
  if (!which('nginx') || !which('wrk')) {
    process.stderr.write('nginx and wrk are needed: apt-get install -y nginx wrk\n');
    return 2;
  }
  let s: Settings;
  try {
    s = parseSettings();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!s.pinned) progress('warning: taskset or a second core is missing; nothing is pinned');
  const load = s.pinned ? LOAD_CORE : undefined;
  const peerCpus = s.pinned ? PEER_CORE : undefined;
  const want = (p: PeerDef): boolean => s.only === undefined || s.only.includes(p.name);
  const c2 = s.withConcurrency ? [peers.sidemirrorMirrorC2] : [];
  const fastPeers = [peers.direct, peers.nginxProxy, peers.nginxMirror, peers.httpProxyMirror, peers.sidemirror, peers.sidemirrorMirror, ...c2].filter(want);
  const slowPeers = s.slow ? [peers.nginxMirror, peers.httpProxyMirror, peers.sidemirrorMirror, ...c2].filter(want) : [];

  progress(`settings: ${s.rounds} round(s) x ${s.duration} s, warm-up ${s.warmup} s, conns ${s.conns.join(',')}; slow shadow ${s.slowDelayMs} ms at c=${s.slowConns}`);
  const primary = await startPrimary(load);
  const fast = await startNginxShadow(load, s.emptyShadowBody);
  const slow = s.slow ? await startSlowShadow(s.slowDelayMs, load, s.emptyShadowBody) : undefined;
  progress(`upstreams: primary :${primary.port}, shadow :${fast.port}${slow ? `, slow shadow :${slow.port}` : ''}`);

  const rows: Row[] = [];
  try {
    const fastEnv: PeerEnv = { primaryPort: primary.port, primaryPid: primary.pid, shadowPort: fast.port, cpus: peerCpus };
    for (const peer of fastPeers) {
      // direct is PRIMARY itself, which lives on the load core: its CPU is measured there.
      for (const conns of s.conns) rows.push(await measure(s, 'fast-shadow', peer, conns, fastEnv, { primary, shadow: fast }));
    }
    if (slow) {
      const slowEnv: PeerEnv = { ...fastEnv, shadowPort: slow.port };
      for (const peer of slowPeers) rows.push(await measure(s, 'slow-shadow', peer, s.slowConns, slowEnv, { primary, shadow: slow }));
    }
  } finally {
    await Promise.all([primary.stop(), fast.stop(), slow?.stop()]);
  }

  process.stdout.write(`\n${table(rows)}\n\n`);
  // The cost of one config regex match on the hot path (RE2 semantics, linear time), in-process.
  const regex = runRegexBench(false, progress);
  process.stdout.write(`regex match cost (RE2 via re2js vs JavaScript RegExp):\n${regex.table}\n\n`);
  const noisy = rows.filter((r) => r.rounds.some((x) => (x.otherOnPeerCore ?? 0) > NOISE_LIMIT)).map((r) => `${r.peer} c=${r.conns}`);
  if (noisy.length > 0) {
    process.stdout.write(`warning: other processes took > ${NOISE_LIMIT * 100}% of core ${PEER_CORE} during some rounds (${noisy.join(', ')}); rerun on a quiet machine\n\n`);
  }
  const cpus = os.cpus();
  const report = {
    machine: {
      cpuModel: cpus[0]?.model ?? 'unknown',
      cpuCount: cpus.length,
      node: process.version,
      nginx: firstLine('nginx', ['-v']),
      wrk: firstLine('wrk', ['-v']),
      os: `${os.type()} ${os.release()}`,
    },
    date: new Date().toISOString(),
    settings: {
      ...s,
      settleMs: SETTLE_MS,
      pinning: s.pinned ? { peer: `core ${PEER_CORE}`, wrkAndUpstreams: `core ${LOAD_CORE}` } : 'none',
      wrk: `wrk -t1 -c{conns} -d{duration}s --timeout 10s --latency`,
    },
    rows,
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
