import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

// CPU time and peak RSS of a process tree from /proc (Linux only). The tree is found by scanning
// /proc/*/stat for parent pids (/proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN).

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clkTck = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clkTck;
}

interface Stat {
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks (c* covers children already reaped). */
  ticks: number;
  /** utime + stime: the process's own threads only. */
  ownTicks: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const num = (field: number): number => Number(rest[field - 3]);
  return { ppid: num(4), ticks: num(14) + num(15) + num(16) + num(17), ownTicks: num(14) + num(15) };
}

/** `root` and all its descendants that are alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (!fs.existsSync(`/proc/${pid}`)) continue;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Total CPU seconds (user + system) consumed so far by the tree under `root`. */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / ticksPerSecond();
}

/** Sum of VmHWM (peak resident set) over the tree under `root`, in MB. */
export function treePeakRssMb(root: number): number {
  let kb = 0;
  for (const pid of processTree(root)) {
    try {
      const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* exited meanwhile */
    }
  }
  return kb / 1024;
}

export interface ProcessCpu {
  pid: number;
  ppid: number;
  /** user + system seconds of the process's own threads so far. */
  seconds: number;
}

/** Each live process of the tree under `root` with its own CPU seconds (its children's not included). */
export function treeCpuByProcess(root: number): ProcessCpu[] {
  const out: ProcessCpu[] = [];
  for (const pid of processTree(root)) {
    const st = readStat(pid);
    if (st) out.push({ pid, ppid: st.ppid, seconds: st.ownTicks / ticksPerSecond() });
  }
  return out;
}

export interface RoleCpu {
  /** The supervisor's own CPU seconds (null: one process, no supervisor). */
  supervisorSeconds: number | null;
  /** Each worker's CPU seconds, by pid (one entry, the proxy itself, without a supervisor). */
  workerSeconds: number[];
  /** Anything further down the tree (none expected). */
  otherSeconds: number;
}

/**
 * CPU seconds spent between two readings of the tree under `root`, split by role: the root is
 * the supervisor when it has children (cluster workers), else it is the one proxy process. A
 * process only in `after` (a worker replaced meanwhile) counts from zero.
 */
export function cpuByRole(root: number, before: ProcessCpu[], after: ProcessCpu[]): RoleCpu {
  const was = new Map(before.map((p) => [p.pid, p.seconds]));
  const spent = (p: ProcessCpu): number => Math.max(0, p.seconds - (was.get(p.pid) ?? 0));
  const self = after.find((p) => p.pid === root);
  const workers = after.filter((p) => p.ppid === root && p.pid !== root).sort((a, b) => a.pid - b.pid);
  const other = after.filter((p) => p.pid !== root && p.ppid !== root).reduce((a, p) => a + spent(p), 0);
  if (workers.length === 0) return { supervisorSeconds: null, workerSeconds: self ? [spent(self)] : [], otherSeconds: other };
  return { supervisorSeconds: self ? spent(self) : null, workerSeconds: workers.map(spent), otherSeconds: other };
}
