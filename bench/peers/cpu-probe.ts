// A fixed amount of CPU-bound JavaScript, timed: the bench runs it at start, pinned to the proxy's
// core, so runs on different machines can be read against each other. The work is the kind a
// proxy does per request (short strings built and hashed, small objects, a Map looked up and
// updated), with a checksum printed so no part can be optimised away. Each pass is timed in
// wall-clock and in this process's CPU time (user + system): a pass that got less than all of the
// core shows as CPU < wall. Prints one JSON line.
// Usage: node cpu-probe.js [--passes 3] [--iterations 400000]

import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { passes: { type: 'string', default: '3' }, iterations: { type: 'string', default: '400000' } } });
const passes = Number(values.passes);
const iterations = Number(values.iterations);
const NAMES = ['host', 'user-agent', 'accept', 'x-request-id', 'x-forwarded-for', 'content-length', 'connection', 'via'];

function work(n: number): number {
  const seen = new Map<string, { hits: number; last: number }>();
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const name = NAMES[i & 7] as string;
    const value = `${name}:${(i * 2654435761) >>> 0}`;
    // FNV-1a over the string's code units.
    let h = 0x811c9dc5;
    for (let j = 0; j < value.length; j++) h = Math.imul(h ^ value.charCodeAt(j), 0x01000193);
    const key = `${name}-${h & 1023}`;
    const entry = seen.get(key);
    if (entry === undefined) seen.set(key, { hits: 1, last: i });
    else {
      entry.hits++;
      entry.last = i;
    }
    sum = (sum + (h >>> 0) + value.length) % 0x7fffffff;
  }
  return (sum + seen.size) % 0x7fffffff;
}

const results: { wallMs: number; cpuMs: number }[] = [];
let checksum = 0;
for (let p = 0; p < passes; p++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  checksum = work(iterations);
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  results.push({ wallMs, cpuMs: (c.user + c.system) / 1000 });
}
process.stdout.write(`${JSON.stringify({ iterations, passes: results, checksum })}\n`);
