import * as fs from 'node:fs';
import * as v8 from 'node:v8';

// Preloaded into the process under soak (`node -r memory-probe.js …`): every few seconds it appends
// one JSON line of process.memoryUsage() and V8's per-space committed sizes to the file named by
// SIDEMIRROR_MEMORY_PROBE, so the soak can tell which part of RSS grows (JS heap, its committed
// pages, Buffer/ArrayBuffer externals, or native memory outside V8). Bench-only; nothing in src/.

const file = process.env.SIDEMIRROR_MEMORY_PROBE;
const everyMs = Number(process.env.SIDEMIRROR_MEMORY_PROBE_MS ?? '5000');
const MB = 1024 * 1024;

if (file !== undefined && file !== '') {
  const t0 = Date.now();
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    const spaces: Record<string, number> = {};
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.physical_space_size / MB;
    const cpu = process.cpuUsage();
    const line = {
      t: (Date.now() - t0) / 1000,
      cpuS: (cpu.user + cpu.system) / 1e6,
      rss: m.rss / MB,
      heapTotal: m.heapTotal / MB,
      heapUsed: m.heapUsed / MB,
      external: m.external / MB,
      arrayBuffers: m.arrayBuffers / MB,
      spaces,
    };
    try {
      fs.appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      /* the soak removed the directory: the process is being stopped */
    }
  }, everyMs);
  timer.unref();
}
