#!/usr/bin/env node
import { runRegexBench } from './regex';
import { summaryTable } from './lib/compare-report';
import { BASELINE, COMPARE_PEERS, type CompareResult, DEFAULT_COMPARE_RATE, runCompareScenario } from './lib/compare-scenario';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { h2loadDriver, type LoadDriver, type Protocol, wrkDriver } from './lib/drivers';
import { grpcUnaryRequest, H2C_GET } from './lib/h2-requests';
import { measure, type MeasureSettings, SETTLE_MS } from './lib/measure';
import * as peers from './lib/peers';
import type { PeerDef, PeerEnv } from './lib/peers';
import { cleanupAll, firstLine, makeTempDir, which } from './lib/processes';
import { table, type Row } from './lib/report';
import { startGrpcUpstream, startH2cUpstream, startNginxShadow, startPrimary, startSlowShadow, type Upstream } from './lib/upstreams';

// `npm run bench`: sidemirror against nginx and node-http-proxy, with and without mirroring, with
// a fast and a slow (2 s) shadow, over HTTP/1.1 (wrk); then h2c GET and gRPC unary (h2load) with
// a fast shadow; then what shadow comparison costs (bench/lib/compare-scenario.ts). Peers run on
// core 0; the load generator and the upstreams on core 1.

const USAGE = `Usage: node dist/bench/run.js [options]
  --rounds N           measured rounds per peer and connection count (default 3)
  --duration S         seconds per round (default 3)
  --warmup S           warm-up seconds before the rounds (default 1)
  --conns 16,64        connection counts for the fast-shadow scenario (default 16,64)
  --slow-conns N       connections for the slow-shadow scenario (default 64)
  --slow-delay-ms MS   delay of the slow shadow (default 2000)
  --only a,b           run only these peers (e.g. sidemirror-mirror,nginx-mirror)
  --no-slow            skip the slow-shadow scenario
  --no-compare         skip the compare scenario: sidemirror's mirror filter without and with
                       response comparison, at saturation and at a fixed rate (HTTP/1.1: only
                       with h1 in --protocols); its rows, for --only:
                       ${COMPARE_PEERS.join(', ')}
  --compare-rate N     the compare scenario's fixed offered rate, req/s (default ${DEFAULT_COMPARE_RATE})
  --empty-shadow-body  shadows answer an empty 200 instead of "ok\\n" (nginx's mirror can only
                       keep shadow connections alive when the response has no body)
  --with-concurrency   also run sidemirror-mirror-c2 (sidemirror --concurrency 2);
                       BENCH_WITH_CONCURRENCY=1 does the same
  --protocols h1,h2c,grpc  which rows to run (default all three; h2c and grpc need h2load:
                       apt-get install -y nghttp2-client, and are skipped with a note without it)
  --h2-load 16x1       h2load connections x streams per connection for the h2c and grpc rows,
                       comma-separated (default 16x1: as many connections and requests in
                       flight as wrk's c=16; 16x4 multiplexes as many as wrk's c=64)
`;

const NOISE_LIMIT = 0.1; // share of the peer's core used by others before a round is flagged
const PEER_CORE = '0';
const LOAD_CORE = '1'; // wrk, h2load, PRIMARY, the shadows
const PROTOCOLS: readonly Protocol[] = ['h1', 'h2c', 'grpc'];

interface Settings {
  rounds: number;
  duration: number;
  warmup: number;
  conns: number[];
  slowConns: number;
  slowDelayMs: number;
  only: string[] | undefined;
  slow: boolean;
  compare: boolean;
  compareRate: number;
  emptyShadowBody: boolean;
  withConcurrency: boolean;
  protocols: Protocol[];
  h2Load: { conns: number; streams: number }[];
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
      'no-compare': { type: 'boolean', default: false },
      'compare-rate': { type: 'string', default: String(DEFAULT_COMPARE_RATE) },
      'empty-shadow-body': { type: 'boolean', default: false },
      'with-concurrency': { type: 'boolean', default: false },
      protocols: { type: 'string', default: PROTOCOLS.join(',') },
      'h2-load': { type: 'string', default: '16x1' },
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
  const protocols = values.protocols.split(',').map((p) => p.trim());
  for (const p of protocols) if (!PROTOCOLS.includes(p as Protocol)) throw new Error(`--protocols takes ${PROTOCOLS.join(', ')}, not "${p}"`);
  const h2Load = values['h2-load'].split(',').map((spec) => {
    const m = /^(\d+)x(\d+)$/.exec(spec.trim());
    if (!m) throw new Error(`--h2-load takes CONNSxSTREAMS (16x4), not "${spec}"`);
    return { conns: int('h2-load', m[1] as string), streams: int('h2-load', m[2] as string) };
  });
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
    compare: !values['no-compare'],
    compareRate: int('compare-rate', values['compare-rate']),
    emptyShadowBody: values['empty-shadow-body'],
    withConcurrency: values['with-concurrency'] || process.env.BENCH_WITH_CONCURRENCY === '1',
    protocols: protocols as Protocol[],
    h2Load,
    pinned,
  };
}

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
  const load = s.pinned ? LOAD_CORE : undefined;
  const peerCpus = s.pinned ? PEER_CORE : undefined;
  const ms: MeasureSettings = { rounds: s.rounds, duration: s.duration, warmup: s.warmup, pinned: s.pinned, peerCore: PEER_CORE, loadCore: LOAD_CORE, progress };
  const want = (p: PeerDef): boolean => s.only === undefined || s.only.includes(p.name);
  const h1 = s.protocols.includes('h1');
  const c2 = s.withConcurrency ? [peers.sidemirrorMirrorC2] : [];
  const fastPeers = h1 ? [peers.direct, peers.nginxProxy, peers.nginxMirror, peers.httpProxyMirror, peers.sidemirror, peers.sidemirrorMirror, ...c2].filter(want) : [];
  const slowPeers = h1 && s.slow ? [peers.nginxMirror, peers.httpProxyMirror, peers.sidemirrorMirror, ...c2].filter(want) : [];
  const notes: string[] = [];
  const h2Wanted = s.protocols.filter((p) => p !== 'h1');
  const h2Protocols = which('h2load') ? h2Wanted : [];
  if (h2Wanted.length > h2Protocols.length) notes.push(`${h2Wanted.join(' and ')} rows skipped: h2load is missing (apt-get install -y nghttp2-client)`);
  for (const n of notes) progress(`note: ${n}`);

  progress(`settings: ${s.rounds} round(s) x ${s.duration} s, warm-up ${s.warmup} s, conns ${s.conns.join(',')}; slow shadow ${s.slowDelayMs} ms at c=${s.slowConns}; ` +
    `protocols ${s.protocols.join(',')}, h2load ${s.h2Load.map((l) => `${l.conns}x${l.streams}`).join(',')}`);
  const rows: Row[] = [];
  let compare: CompareResult | null = null;
  const h1Upstreams: Upstream[] = [];
  try {
    const primary = h1 ? await startPrimary(load) : undefined;
    const fast = h1 ? await startNginxShadow(load, s.emptyShadowBody) : undefined;
    const slow = h1 && s.slow ? await startSlowShadow(s.slowDelayMs, load, s.emptyShadowBody) : undefined;
    for (const u of [primary, fast, slow]) if (u) h1Upstreams.push(u);
    if (primary && fast) {
      progress(`upstreams: primary :${primary.port}, shadow :${fast.port}${slow ? `, slow shadow :${slow.port}` : ''}`);
      const fastEnv: PeerEnv = { primaryPort: primary.port, primaryPid: primary.pid, shadowPort: fast.port, cpus: peerCpus };
      // direct is PRIMARY itself, which lives on the load core: its CPU is measured there.
      for (const peer of fastPeers) {
        for (const conns of s.conns) rows.push(await measure(ms, 'fast-shadow', peer, wrkDriver(conns, load), fastEnv, { primary, shadow: fast }));
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
    if (h1 && s.compare) compare = await runCompareScenario({ ms, conns: s.conns, rate: s.compareRate, only: s.only, loadCpus: load, peerCpus });
  } finally {
    await Promise.all(h1Upstreams.map((u) => u.stop()));
  }

  process.stdout.write(`\n${rows.length > 0 ? `${table(rows)}\n` : ''}${notes.map((n) => `note: ${n}\n`).join('')}\n`);
  if (compare && compare.saturation.length + compare.fixedRate.length > 0) {
    process.stdout.write(`${table(compare.saturation)}\n\n${summaryTable(compare.summary, compare.settings.rate, BASELINE)}\n\n`);
  }
  // The cost of one config regex match on the hot path (RE2 semantics, linear time), in-process.
  const regex = runRegexBench(false, progress);
  process.stdout.write(`regex match cost (RE2 via re2js vs JavaScript RegExp):\n${regex.table}\n\n`);
  const noisy = [...rows, ...(compare?.saturation ?? [])].filter((r) => r.rounds.some((x) => (x.otherOnPeerCore ?? 0) > NOISE_LIMIT)).map((r) => `${r.protocol} ${r.peer} c=${r.conns}${r.protocol === 'h1' ? '' : ` m=${r.streams}`}`);
  for (const r of compare?.fixedRate ?? []) if (r.rounds.some((x) => (x.otherOnPeerCore ?? 0) > NOISE_LIMIT)) noisy.push(`h1 ${r.peer} @${r.offeredRps} req/s`);
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
      h2load: h2Protocols.length > 0 ? firstLine('h2load', ['--version']) : null,
      os: `${os.type()} ${os.release()}`,
    },
    date: new Date().toISOString(),
    settings: {
      ...s,
      settleMs: SETTLE_MS,
      pinning: s.pinned ? { peer: `core ${PEER_CORE}`, wrkAndUpstreams: `core ${LOAD_CORE}` } : 'none',
      wrk: `wrk -t1 -c{conns} -d{duration}s --timeout 10s --latency`,
      h2load: 'h2load -t 1 -c {conns} -m {streams} -n {rate of the previous run x duration} --log-file … [gRPC: -H content-type: application/grpc -H te: trailers -d <framed message>] http://127.0.0.1:{port}{path}',
    },
    notes,
    rows,
    compare,
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
