import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { firstLine, which } from './processes';

// What the machine is, and how fast its proxy core runs a fixed piece of work, measured at bench
// start: the CPU model and clock from /proc/cpuinfo, the tools' versions, a fixed JavaScript loop
// (bench/peers/cpu-probe.ts) and, if openssl is there, `openssl speed` over SHA-256. The loop
// is timed in CPU time as well as wall-clock, so a core shared with other work shows.

export interface CpuInfo {
  model: string | null;
  /** The clock of the given core as the kernel reports it now (it may scale). */
  mhz: number | null;
  processors: number;
}

/** `processor: N` blocks of /proc/cpuinfo; the model and MHz of `core` (or the first block). */
export function parseCpuinfo(text: string, core = 0): CpuInfo {
  const blocks = text.split(/\n\s*\n/).map((b) => {
    const fields = new Map<string, string>();
    for (const line of b.split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) fields.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    return fields;
  }).filter((f) => f.has('processor'));
  const block = blocks.find((f) => Number(f.get('processor')) === core) ?? blocks[0];
  const mhz = Number(block?.get('cpu mhz'));
  return { model: block?.get('model name') ?? null, mhz: block?.has('cpu mhz') && Number.isFinite(mhz) ? mhz : null, processors: blocks.length };
}

/** The throughput of `openssl speed -bytes N sha256`'s result line, in MB/s (openssl prints 1000s of bytes per second). */
export function parseOpensslSpeed(out: string, algorithm = 'sha256'): number | null {
  const m = new RegExp(`^${algorithm}\\s+([\\d.]+)k\\s*$`, 'm').exec(out);
  return m ? Number(m[1]) / 1000 : null;
}

export interface JsProbePass {
  wallMs: number;
  cpuMs: number;
}

export interface JsProbe {
  iterations: number;
  passes: JsProbePass[];
  /** The fastest pass by CPU time (the first pass also compiles). */
  bestCpuMs: number | null;
  /** That pass's CPU over wall time: under ~0.9, others shared the core meanwhile. */
  coreShare: number | null;
}

/** The fastest pass by CPU time, and its share of the core. */
export function summarizeJsProbe(iterations: number, passes: JsProbePass[]): JsProbe {
  const best = passes.filter((p) => p.cpuMs > 0 && p.wallMs > 0).sort((a, b) => a.cpuMs - b.cpuMs)[0];
  return { iterations, passes, bestCpuMs: best?.cpuMs ?? null, coreShare: best ? Math.min(1, best.cpuMs / best.wallMs) : null };
}

export interface MachineProbe {
  cpuModel: string;
  cpuMhz: number | null;
  cpuCount: number;
  /** The core the probes ran on (the proxy's), or null when nothing is pinned. */
  probeCore: string | null;
  os: string;
  node: string;
  nginx: string;
  wrk: string;
  h2load: string | null;
  openssl: string | null;
  jsLoop: JsProbe | null;
  /** `openssl speed -seconds 1 -bytes 16384 sha256` in MB/s (wall-clock based), or null. */
  opensslSha256MBps: number | null;
  error?: string;
}

const TIMEOUT_MS = 20_000;

/** taskset -c core … when pinned. */
function pinned(core: string | null, cmd: string, args: string[]): [string, string[]] {
  return core !== null ? ['taskset', ['-c', core, cmd, ...args]] : [cmd, args];
}

function runJsProbe(core: string | null): JsProbe | null {
  const script = path.join(__dirname, '..', 'peers', 'cpu-probe.js');
  const [cmd, args] = pinned(core, process.execPath, [script]);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: TIMEOUT_MS });
  try {
    const out = JSON.parse((r.stdout ?? '').trim().split('\n').pop() ?? '') as { iterations: number; passes: JsProbePass[] };
    return summarizeJsProbe(out.iterations, out.passes);
  } catch {
    return null;
  }
}

function runOpensslProbe(core: string | null): number | null {
  if (!which('openssl')) return null;
  const [cmd, args] = pinned(core, 'openssl', ['speed', '-seconds', '1', '-bytes', '16384', 'sha256']);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: TIMEOUT_MS });
  return parseOpensslSpeed(r.stdout ?? '');
}

export function probeMachine(core: string | null, withH2load: boolean): MachineProbe {
  let info: CpuInfo = { model: null, mhz: null, processors: os.cpus().length };
  try {
    info = parseCpuinfo(fs.readFileSync('/proc/cpuinfo', 'utf8'), core === null ? 0 : Number(core));
  } catch {
    /* not Linux: os.cpus() below */
  }
  return {
    cpuModel: info.model ?? os.cpus()[0]?.model ?? 'unknown',
    cpuMhz: info.mhz,
    cpuCount: os.cpus().length,
    probeCore: core,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    nginx: firstLine('nginx', ['-v']).replace(/^nginx version: /, ''),
    wrk: firstLine('wrk', ['-v']),
    h2load: withH2load ? firstLine('h2load', ['--version']) : null,
    openssl: which('openssl') ? firstLine('openssl', ['version']) : null,
    jsLoop: runJsProbe(core),
    opensslSha256MBps: runOpensslProbe(core),
  };
}

const fmt = (v: number | null, d = 0): string => (v === null ? '-' : v.toFixed(d));

/** Two lines for the top of the output. */
export function machineLines(m: MachineProbe): string {
  const where = m.probeCore !== null ? `core ${m.probeCore}` : 'an unpinned core';
  const js = m.jsLoop;
  const share = js?.coreShare ?? null;
  return [
    `machine: ${m.cpuModel}, ${m.cpuCount} cores, ${m.probeCore !== null ? `core ${m.probeCore} ` : ''}at ${fmt(m.cpuMhz)} MHz; ${m.os}; Node ${m.node}, ${m.nginx}, ${m.wrk.split(' Copyright')[0]}${m.openssl ? `, ${m.openssl.split(' (')[0]}` : ''}`,
    `cpu probe on ${where}: JS loop ${js ? `${fmt(js.bestCpuMs, 1)} ms CPU for ${js.iterations} iterations (best of ${js.passes.length}` +
      `${share !== null ? `; it had ${Math.round(share * 100)}% of the core${share < 0.9 ? ': others were using it' : ''}` : ''})` : 'failed'}` +
      `${m.opensslSha256MBps !== null ? `; openssl sha256 16 KiB blocks ${fmt(m.opensslSha256MBps)} MB/s (wall-clock)` : ''}`,
  ].join('\n');
}
