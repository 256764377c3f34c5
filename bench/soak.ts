#!/usr/bin/env node
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as peers from './lib/peers';
import { cleanupAll, makeTempDir, sleep, which } from './lib/processes';
import { runRateLoad } from './lib/rate-load';
import { startPrimary, startSlowShadow } from './lib/upstreams';

// `npm run bench:soak`: sidemirror mirroring every request to a slow shadow, under a fixed request
// rate for a long time, with its RSS sampled every few seconds. The question is whether memory
// settles: the drift between the first and the last minute is printed, table + JSON.

const USAGE = `Usage: node dist/bench/soak.js [options]
  --duration D       how long to load: 90s, 10m (default 10m)
  --rate N           requests per second (default 500)
  --sample-s S       seconds between RSS samples (default 5)
  --shadow-delay-ms  delay of the slow shadow (default 2000)
  --connections N    client keep-alive connections (default 16)
  --node-flag F      a flag for sidemirror's node (repeatable), e.g. --node-flag=--max-semi-space-size=8
  --env K=V          environment for sidemirror (repeatable), e.g. --env MALLOC_ARENA_MAX=8
sidemirror runs as shipped (--max-semi-space-size=8, MALLOC_ARENA_MAX=2: src/workers/heap-flags.ts);
--node-flag=--max-semi-space-size=16 and --env MALLOC_ARENA_MAX=16 give back V8's and glibc's defaults.
RSS follows V8's heap growth between full collections; the live heap is read too: sidemirror
runs with --trace-gc, and the heap left after each mark-compact is compared the same way. Inside
it, a -r probe (bench/lib/memory-probe.ts) samples process.memoryUsage(), so the table shows
which part moves: heapTotal (V8's committed heap), external/arrayBuffers, or rss - heapTotal
(native memory outside the JS heap).
`;

interface Sample {
  t: number;
  rssMb: number;
}

/** The heap a full collection left, from a --trace-gc line. */
interface LiveHeap {
  t: number;
  liveMb: number;
  /** The heap V8 keeps committed after that collection (part of RSS, live or not). */
  committedMb: number;
}

// e.g. "[123:0x5f…]    61234 ms: Mark-Compact 182.4 (190.1) -> 96.3 (184.7) MB, …"
const MARK_COMPACT = /(\d+) ms: Mark-Compact[^\d]*[\d.]+ \([\d.]+\) -> ([\d.]+) \(([\d.]+)\) MB/;

/** How many scavenges and mark-compacts --trace-gc printed between load start and end. */
function gcCounts(pid: number, startedAtMs: number, seconds: number): { scavenges: number; markCompacts: number } {
  let text = '';
  try {
    text = fs.readFileSync(fs.readlinkSync(`/proc/${pid}/fd/1`), 'utf8');
  } catch {
    /* gone */
  }
  let scavenges = 0;
  let markCompacts = 0;
  for (const m of text.matchAll(/(\d+) ms: (Scavenge|Mark-Compact)/g)) {
    const t = (Number(m[1]) - startedAtMs) / 1000;
    if (t < 0 || t > seconds) continue;
    if (m[2] === 'Scavenge') scavenges++;
    else markCompacts++;
  }
  return { scavenges, markCompacts };
}

/** The mark-compact lines of a process's stdout so far (its log file, found through /proc). */
function liveHeaps(pid: number, startedAtMs: number): LiveHeap[] {
  let text: string;
  try {
    text = fs.readFileSync(fs.readlinkSync(`/proc/${pid}/fd/1`), 'utf8');
  } catch {
    return [];
  }
  const out: LiveHeap[] = [];
  for (const line of text.split('\n')) {
    const m = MARK_COMPACT.exec(line);
    // --trace-gc times count from the process start; the load starts `startedAtMs` later.
    if (m) out.push({ t: (Number(m[1]) - startedAtMs) / 1000, liveMb: Number(m[2]), committedMb: Number(m[3]) });
  }
  return out;
}

function parseDuration(v: string): number {
  const m = /^(\d+)(s|m)?$/.exec(v.trim());
  if (!m) throw new Error(`--duration must look like 90s or 10m, not "${v}"`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

function rssMb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** One line of bench/lib/memory-probe.ts: process.memoryUsage() in MB, inside sidemirror. */
interface ProbeSample {
  t: number;
  /** CPU seconds (user + system) the process has used so far. */
  cpuS: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  spaces: Record<string, number>;
}

function probeSamples(file: string, startedAtMs: number): ProbeSample[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  // The probe's clock starts with the process; the load starts `startedAtMs` later.
  return text.split('\n').filter((l) => l !== '').map((l) => {
    const p = JSON.parse(l) as ProbeSample;
    return { ...p, t: p.t - startedAtMs / 1000 };
  });
}

const COMPONENTS = ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers', 'outsideHeap'] as const;
type Component = (typeof COMPONENTS)[number];
const component = (p: ProbeSample, c: Component): number => (c === 'outsideHeap' ? p.rss - p.heapTotal : p[c]);

/** /proc/<pid>/cmdline or environ, split at NULs ([] once the process is gone). */
function readProc(pid: number, file: 'cmdline' | 'environ'): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

const mean = (v: number[]): number | null => (v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length);
const fmt = (v: number | null, d = 1): string => (v === null ? '-' : v.toFixed(d));

const started = Date.now();
function progress(msg: string): void {
  process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10m' },
      rate: { type: 'string', default: '500' },
      'sample-s': { type: 'string', default: '5' },
      'shadow-delay-ms': { type: 'string', default: '2000' },
      connections: { type: 'string', default: '16' },
      'node-flag': { type: 'string', multiple: true, default: [] },
      env: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!which('nginx')) {
    process.stderr.write('nginx is needed for the primary: apt-get install -y nginx\n');
    return 2;
  }
  const seconds = parseDuration(values.duration);
  const rate = Number(values.rate);
  const sampleS = Number(values['sample-s']);
  const delayMs = Number(values['shadow-delay-ms']);
  const connections = Number(values.connections);
  for (const [k, v] of Object.entries({ rate, 'sample-s': sampleS, 'shadow-delay-ms': delayMs, connections })) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`--${k} must be a positive integer`);
  }
  const extraEnv: Record<string, string> = {};
  for (const kv of values.env) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(kv);
    if (!m) throw new Error(`--env must look like KEY=VALUE, not "${kv}"`);
    extraEnv[m[1]!] = m[2]!;
  }
  const nodeFlags = values['node-flag'];
  // The windows compared: a minute each, or a quarter of a shorter run.
  const window = Math.min(60, seconds / 4);

  const primary = await startPrimary();
  const shadow = await startSlowShadow(delayMs);
  const probeFile = path.join(makeTempDir('soak-probe'), 'memory.jsonl');
  const probeJs = path.join(__dirname, 'lib', 'memory-probe.js');
  const spawnedAt = performance.now();
  const peer = await peers.sidemirrorMirror.start({
    primaryPort: primary.port,
    primaryPid: primary.pid,
    shadowPort: shadow.port,
    nodeArgs: ['--trace-gc', ...nodeFlags, '-r', probeJs],
    // The bench's peers are started on the fast codec unless told: a codec chosen in the soak's own environment stands.
    env: { ...(process.env.SIDEMIRROR_HTTP1_CODEC !== undefined ? { SIDEMIRROR_HTTP1_CODEC: process.env.SIDEMIRROR_HTTP1_CODEC } : {}), ...extraEnv, SIDEMIRROR_MEMORY_PROBE: probeFile, SIDEMIRROR_MEMORY_PROBE_MS: String(sampleS * 1000) },
  });
  // What the peer really runs with: the defaults peers.ts adds (semi-space, malloc arenas) included.
  const peerArgv = readProc(peer.pid, 'cmdline').filter((a) => a !== '');
  const peerNodeFlags = peerArgv.slice(1, peerArgv.findIndex((a) => a.endsWith('cli.js'))).filter((a, i, all) => a !== '-r' && all[i - 1] !== '-r' && a !== '--trace-gc');
  const arenaMax = readProc(peer.pid, 'environ').find((e) => e.startsWith('MALLOC_ARENA_MAX='))?.slice('MALLOC_ARENA_MAX='.length) ?? null;
  progress(`soak: ${rate} req/s for ${seconds} s through sidemirror (pid ${peer.pid}) mirroring to a ${delayMs} ms shadow; node flags [${peerNodeFlags.join(' ')}] MALLOC_ARENA_MAX=${arenaMax ?? 'unset'}`);
  const loadBefore = os.loadavg();
  const samples: Sample[] = [];
  const t0 = performance.now();
  let heaps: LiveHeap[] = [];
  let probes: ProbeSample[] = [];
  let gcs = { scavenges: 0, markCompacts: 0 };
  const sampler = setInterval(() => {
    const mb = rssMb(peer.pid);
    const t = (performance.now() - t0) / 1000;
    if (mb !== null) samples.push({ t, rssMb: mb });
    if (mb !== null && Math.round(t) % 30 < sampleS) progress(`t=${t.toFixed(0)} s RSS ${mb.toFixed(1)} MB`);
  }, sampleS * 1000);
  let result;
  try {
    result = await runRateLoad({ port: peer.port, rate, seconds, connections });
  } finally {
    clearInterval(sampler);
    heaps = liveHeaps(peer.pid, t0 - spawnedAt);
    probes = probeSamples(probeFile, t0 - spawnedAt);
    gcs = gcCounts(peer.pid, t0 - spawnedAt, seconds);
    await sleep(delayMs + 500); // shadows still in flight end before the peer is stopped
    await Promise.all([peer.stop(), primary.stop(), shadow.stop()]);
  }

  const first = mean(samples.filter((s) => s.t <= window).map((s) => s.rssMb));
  const last = mean(samples.filter((s) => s.t > seconds - window).map((s) => s.rssMb));
  const peak = samples.length === 0 ? null : Math.max(...samples.map((s) => s.rssMb));
  const driftPct = first === null || last === null ? null : ((last - first) / first) * 100;
  const firstLive = mean(heaps.filter((h) => h.t >= 0 && h.t <= window).map((h) => h.liveMb));
  const lastLive = mean(heaps.filter((h) => h.t > seconds - window && h.t <= seconds).map((h) => h.liveMb));
  const liveDriftPct = firstLive === null || lastLive === null ? null : ((lastLive - firstLive) / firstLive) * 100;
  const head = ['rate', 'seconds', 'sent', 'ok', 'non-2xx', 'errors', 'skipped', 'p50 ms', 'p99 ms', `RSS first ${window}s MB`, `RSS last ${window}s MB`, 'peak MB', 'drift %', 'live heap first/last MB', 'live drift %'];
  const row = [String(rate), String(seconds), String(result.sent), String(result.ok), String(result.non2xx), String(result.errors), String(result.skipped),
    fmt(result.p50Ms, 2), fmt(result.p99Ms, 2), fmt(first), fmt(last), fmt(peak), fmt(driftPct), `${fmt(firstLive)}/${fmt(lastLive)}`, fmt(liveDriftPct)];
  const width = head.map((h, i) => Math.max(h.length, row[i]!.length));
  process.stdout.write(`\n${head.map((h, i) => h.padStart(width[i]!)).join('  ')}\n${row.map((c, i) => c.padStart(width[i]!)).join('  ')}\n\n`);

  // Minute by minute (or window by window): a warm-up in the first shows apart from a creep.
  const perWindow: Array<{ fromS: number; toS: number; meanMb: number | null; minMb: number | null; maxMb: number | null }> = [];
  for (let from = 0; from < seconds; from += window) {
    const w = samples.filter((x) => x.t > from && x.t <= from + window).map((x) => x.rssMb);
    perWindow.push({ fromS: from, toS: from + window, meanMb: mean(w), minMb: w.length ? Math.min(...w) : null, maxMb: w.length ? Math.max(...w) : null });
  }
  process.stdout.write(`RSS per ${window} s (mean min max MB): ${perWindow.map((w) => `${fmt(w.meanMb)} ${fmt(w.minMb)} ${fmt(w.maxMb)}`).join(' | ')}\n\n`);

  // Which part grows: each process.memoryUsage() component, first window vs last window.
  const inFirst = probes.filter((p) => p.t >= 0 && p.t <= window);
  const inLast = probes.filter((p) => p.t > seconds - window && p.t <= seconds);
  const components: Record<string, { firstMb: number | null; lastMb: number | null; driftPct: number | null }> = {};
  process.stdout.write(`${'process.memoryUsage()'.padEnd(22)}${'first MB'.padStart(10)}${'last MB'.padStart(10)}${'drift %'.padStart(10)}\n`);
  for (const c of COMPONENTS) {
    const a = mean(inFirst.map((p) => component(p, c)));
    const b = mean(inLast.map((p) => component(p, c)));
    const d = a === null || b === null || a === 0 ? null : ((b - a) / a) * 100;
    components[c] = { firstMb: a, lastMb: b, driftPct: d };
    const label = c === 'outsideHeap' ? 'rss - heapTotal' : c;
    process.stdout.write(`${label.padEnd(22)}${fmt(a).padStart(10)}${fmt(b).padStart(10)}${fmt(d).padStart(10)}\n`);
  }
  const during = probes.filter((p) => p.t >= 0 && p.t <= seconds);
  const cpuS = during.length < 2 ? null : during[during.length - 1]!.cpuS - during[0]!.cpuS;
  const cpuPct = cpuS === null ? null : (cpuS / (during[during.length - 1]!.t - during[0]!.t)) * 100;
  const peakHeapTotal = probes.length === 0 ? null : Math.max(...probes.map((p) => p.heapTotal));
  process.stdout.write(`\nsidemirror CPU ${fmt(cpuPct)} % of a core; ${gcs.scavenges} scavenges, ${gcs.markCompacts} mark-compacts; peak heapTotal ${fmt(peakHeapTotal)} MB\n`);
  const loadAfter = os.loadavg();
  process.stdout.write(`\nload average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}\n\n`);

  const report = {
    machine: { cpuModel: os.cpus()[0]?.model ?? 'unknown', cpuCount: os.cpus().length, node: process.version, os: `${os.type()} ${os.release()}` },
    date: new Date().toISOString(),
    settings: { seconds, rate, sampleS, shadowDelayMs: delayMs, connections, windowS: window, nodeOptions: process.env.NODE_OPTIONS ?? '', nodeFlags, env: extraEnv, peerNodeFlags, mallocArenaMax: arenaMax },
    loadAverage: { before: loadBefore, after: loadAfter },
    load: result,
    rss: { firstWindowMb: first, lastWindowMb: last, peakMb: peak, driftPct, perWindow, samples },
    memoryUsage: { components, peakHeapTotalMb: peakHeapTotal, samples: probes },
    sidemirror: { cpuPct, ...gcs },
    liveHeapAfterMarkCompact: { firstWindowMb: firstLive, lastWindowMb: lastLive, driftPct: liveDriftPct, samples: heaps },
  };
  const dir = path.join(__dirname, '..', '..', 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `soak-${report.date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  progress(`results: ${path.relative(process.cwd(), file) || file}`);
  return 0;
}

process.on('exit', cleanupAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    cleanupAll();
    process.exit(130);
  });
}
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n\n${USAGE}`);
    process.exit(1);
  },
);
