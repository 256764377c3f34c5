import * as fs from 'node:fs';

// Per-core busy fractions from /proc/stat, to tell whether the peer's core or the load core
// (wrk + upstreams) was the bottleneck in a round.

export type CoreTimes = Map<string, { busy: number; irq: number; total: number }>;

export function readCoreTimes(): CoreTimes {
  const out: CoreTimes = new Map();
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^(cpu\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = (m[2] as string).split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal (guest* are already in user/nice)
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    out.set(m[1] as string, { busy: total - idle, irq: (f[5] ?? 0) + (f[6] ?? 0), total });
  }
  return out;
}

/** Busy fraction (0..1) of `core` ("cpu0") between two readings; null if unknown. */
export function coreBusy(before: CoreTimes, after: CoreTimes, core: string): number | null {
  const a = before.get(core);
  const b = after.get(core);
  if (!a || !b || b.total === a.total) return null;
  return (b.busy - a.busy) / (b.total - a.total);
}

/**
 * irq + softirq fraction of `core`: mostly the loopback network stack, run for whichever process
 * sends or receives and charged to none of them.
 */
export function coreIrq(before: CoreTimes, after: CoreTimes, core: string): number | null {
  const a = before.get(core);
  const b = after.get(core);
  if (!a || !b || b.total === a.total) return null;
  return (b.irq - a.irq) / (b.total - a.total);
}
