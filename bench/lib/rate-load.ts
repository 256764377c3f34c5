import { Pool } from 'undici';

// A rate-limited HTTP load generator (wrk2 is not packaged in Debian): requests start on a fixed
// schedule whatever the latency, over a bounded keep-alive pool, with a bounded number in flight.

export interface RateLoadOptions {
  readonly port: number;
  readonly rate: number;
  readonly seconds: number;
  /** Keep-alive connections (default 16). */
  readonly connections?: number;
  /** Requests in flight before the schedule is skipped, counted as `skipped` (default 512). */
  readonly maxInFlight?: number;
  /**
   * How often the schedule is caught up with, ms (default 5): every tick starts the requests due
   * since the last one at once, so at 1000 req/s a 5 ms tick sends bursts of 5.
   */
  readonly tickMs?: number;
  /** Called every second with what happened in that second. */
  readonly onSecond?: (s: SecondStats) => void;
}

export interface SecondStats {
  readonly second: number;
  readonly sent: number;
  readonly ok: number;
  readonly errors: number;
}

export interface RateLoadResult {
  readonly sent: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  /** Schedule slots dropped because maxInFlight requests were outstanding. */
  readonly skipped: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

const TICK_MS = 5;
/** Latency samples kept for the percentiles: a reservoir, so memory is bounded for any duration. */
const RESERVOIR = 100_000;

export async function runRateLoad(o: RateLoadOptions): Promise<RateLoadResult> {
  const pool = new Pool(`http://127.0.0.1:${o.port}`, { connections: o.connections ?? 16, pipelining: 1, keepAliveTimeout: 30_000 });
  const maxInFlight = o.maxInFlight ?? 512;
  const samples: number[] = [];
  let seen = 0;
  let sent = 0;
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let skipped = 0;
  let inFlight = 0;
  let second = { sent: 0, ok: 0, errors: 0 };

  const one = (): void => {
    inFlight++;
    sent++;
    second.sent++;
    const t0 = performance.now();
    pool.request({ path: '/', method: 'GET' }).then(
      async (res) => {
        await res.body.dump();
        const ms = performance.now() - t0;
        seen++;
        if (samples.length < RESERVOIR) samples.push(ms);
        else {
          const i = Math.floor(Math.random() * seen);
          if (i < RESERVOIR) samples[i] = ms;
        }
        if (res.statusCode >= 200 && res.statusCode < 400) {
          ok++;
          second.ok++;
        } else non2xx++;
      },
      () => {
        errors++;
        second.errors++;
      },
    ).finally(() => inFlight--);
  };

  const start = performance.now();
  const end = start + o.seconds * 1000;
  let scheduled = 0;
  let nextSecond = 1;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      const due = Math.floor(((Math.min(now, end) - start) / 1000) * o.rate);
      for (; scheduled < due; scheduled++) {
        if (inFlight >= maxInFlight) skipped++;
        else one();
      }
      while (now - start >= nextSecond * 1000 && nextSecond <= o.seconds) {
        o.onSecond?.({ second: nextSecond, ...second });
        second = { sent: 0, ok: 0, errors: 0 };
        nextSecond++;
      }
      if (now >= end) {
        clearInterval(timer);
        resolve();
      }
    }, o.tickMs ?? TICK_MS);
  });
  // Let what is in flight finish (bounded), then close the pool.
  const drainUntil = performance.now() + 10_000;
  while (inFlight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
  await pool.destroy();
  samples.sort((a, b) => a - b);
  const q = (p: number): number | null => (samples.length === 0 ? null : samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!);
  return { sent, ok, non2xx, errors, skipped, p50Ms: q(0.5), p99Ms: q(0.99) };
}
