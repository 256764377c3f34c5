// The shared deadline wheel, on real time: never early, at the first sweep after its time (so at
// most about one tick late), disarm and re-arm, deadlines past one turn of the wheel, and many
// deadlines costing memory per deadline but no timer each. Lateness is never asserted in
// milliseconds: a loaded machine delays every sweep, so it is judged against the sweeps that
// actually ran, by the clock reading each sweep hands its owners (a probe re-armed at every
// sweep records them all). The sweeps themselves come every tick.
import { createHook } from 'node:async_hooks';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Deadline, type DeadlineOwner, DeadlineWheel } from '../../src/util/deadline-wheel';

const TICK = 10;

interface Fire {
  /** performance.now() in onDeadline. */
  readonly at: number;
  /** The sweep's clock reading. */
  readonly sweep: number;
  /** The wheel's own time for the deadline, when it was armed. */
  readonly due: number;
}

/** Records each firing of its deadlines. */
class Recorder implements DeadlineOwner {
  readonly fires = new Map<Deadline, Fire[]>();
  readonly order: Deadline[] = [];
  readonly due = new Map<Deadline, number>();

  arm(d: Deadline, ms: number): void {
    d.arm(ms);
    this.due.set(d, d.at);
  }

  onDeadline(d: Deadline, now: number): void {
    const list = this.fires.get(d) ?? [];
    list.push({ at: performance.now(), sweep: now, due: this.due.get(d)! });
    this.fires.set(d, list);
    this.order.push(d);
  }
}

/** Re-armed at 0 ms each time it fires, so it fires in every sweep: the sweeps' clock readings. */
class Probe implements DeadlineOwner {
  readonly sweeps: number[] = [];
  readonly #d: Deadline;
  constructor(wheel: DeadlineWheel) {
    this.#d = new Deadline(this, wheel);
    this.#d.arm(0);
  }
  onDeadline(d: Deadline, now: number): void {
    this.sweeps.push(now);
    d.arm(0);
  }
  stop(): void {
    this.#d.disarm();
  }
  /** The latest sweep before `t`, or -Infinity. */
  before(t: number): number {
    let best = -Infinity;
    for (const s of this.sweeps) if (s < t && s > best) best = s;
    return best;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until `done()` holds. */
async function until(done: () => boolean, limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* the event loop is blocked on purpose */ }
}

/** Node timers (setTimeout, setInterval; unref'd ones too) created while `run` runs. */
function timersCreatedBy(run: () => void): number {
  let n = 0;
  const hook = createHook({ init: (_id, type) => { if (type === 'Timeout') n++; } }).enable();
  try {
    run();
  } finally {
    hook.disable();
  }
  return n;
}

test('deadlines never fire early, and fire at the first sweep after their time', async () => {
  const wheel = new DeadlineWheel(TICK);
  const rec = new Recorder();
  const probe = new Probe(wheel);
  try {
    await sleep(25);
    const wanted = new Map<Deadline, number>();
    // 300 deadlines from 1 to 150 ms, armed in three bursts a little apart (not on tick boundaries).
    for (let burst = 0; burst < 3; burst++) {
      for (let i = 0; i < 100; i++) {
        const d = new Deadline(rec, wheel);
        const ms = 1 + ((i * 37 + burst * 11) % 150);
        wanted.set(d, performance.now() + ms);
        rec.arm(d, ms);
      }
      await sleep(7);
    }
    await until(() => rec.order.length >= 300);
    for (const [d, earliest] of wanted) {
      const fires = rec.fires.get(d)!;
      expect(fires).toHaveLength(1);
      const f = fires[0]!;
      // Never early: not before the time asked for (measured by the caller before arming), and
      // not in a sweep that read the clock before the deadline's time.
      expect(f.at).toBeGreaterThanOrEqual(earliest);
      expect(f.sweep).toBeGreaterThanOrEqual(f.due);
      // At the first sweep after its time: the sweep before found it not yet due.
      expect(probe.before(f.sweep)).toBeLessThan(f.due);
    }
  } finally {
    probe.stop();
  }
  await until(() => !wheel.running);
  expect(wheel.size).toBe(0);
});

test('a disarmed deadline never fires; the wheel stops once nothing is armed', async () => {
  const wheel = new DeadlineWheel(TICK);
  const rec = new Recorder();
  const kept = new Deadline(rec, wheel);
  const dropped = new Deadline(rec, wheel);
  const droppedLate = new Deadline(rec, wheel);
  rec.arm(kept, 30);
  rec.arm(dropped, 20);
  rec.arm(droppedLate, 5000);
  expect(wheel.size).toBe(3);
  expect(wheel.running).toBe(true);
  dropped.disarm();
  dropped.disarm();
  expect(dropped.armed).toBe(false);
  await until(() => rec.order.length >= 1);
  droppedLate.disarm();
  expect(wheel.size).toBe(0);
  await sleep(100);
  expect(rec.order).toEqual([kept]);
  expect(wheel.running).toBe(false);
});

test('re-arming moves a deadline later or earlier; an owner may re-arm from onDeadline', async () => {
  const wheel = new DeadlineWheel(TICK);
  const rec = new Recorder();
  const later = new Deadline(rec, wheel);
  const earlier = new Deadline(rec, wheel);
  const mid = new Deadline(rec, wheel);
  const sentinel = new Deadline(rec, wheel);
  rec.arm(later, 20);
  rec.arm(earlier, 5000);
  rec.arm(mid, 40);
  rec.arm(sentinel, 200);
  // Later, as an idle timeout is refreshed on every chunk; earlier, as a shorter timeout replaces a longer one.
  const laterArmed = performance.now();
  later.arm(60);
  const earlierArmed = performance.now();
  earlier.arm(10);
  await until(() => rec.order.length >= 4);
  // Judged by order against deadlines that were not moved, never by milliseconds.
  expect(rec.order).toEqual([earlier, mid, later, sentinel]);
  expect(rec.fires.get(later)![0]!.at).toBeGreaterThanOrEqual(laterArmed + 60);
  expect(rec.fires.get(earlier)![0]!.at).toBeGreaterThanOrEqual(earlierArmed + 10);
  expect(wheel.size).toBe(0);

  // Periodic: each firing re-arms for 15 ms, five times.
  let n = 0;
  const times: number[] = [];
  const periodic = new Deadline({ onDeadline: (d) => { times.push(performance.now()); if (++n < 5) d.arm(15); } }, wheel);
  periodic.arm(15);
  await until(() => n >= 5);
  for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(15);
  await until(() => !wheel.running);
});

test('a deadline more than one turn away goes round the wheel and fires once, not early', async () => {
  // 8 slots of 5 ms: one turn is 40 ms.
  const wheel = new DeadlineWheel(5, 8);
  const rec = new Recorder();
  const ds = [95, 130, 41, 40, 39].map((ms) => {
    const d = new Deadline(rec, wheel);
    const earliest = performance.now() + ms;
    rec.arm(d, ms);
    return { d, earliest };
  });
  await until(() => rec.order.length >= ds.length);
  await sleep(60);
  for (const { d, earliest } of ds) {
    expect(rec.fires.get(d)).toHaveLength(1);
    expect(rec.fires.get(d)![0]!.at).toBeGreaterThanOrEqual(earliest);
  }
});

test('after the event loop was blocked past several turns, what is due fires at once, in order of time', async () => {
  const wheel = new DeadlineWheel(5, 8);
  const rec = new Recorder();
  const spec = [30, 12, 25, 7, 5000];
  const ds = spec.map((ms) => {
    const d = new Deadline(rec, wheel);
    rec.arm(d, ms);
    return d;
  });
  busyWait(120);
  await until(() => rec.order.length >= 4);
  // The four due came in one sweep, earliest first; the 5 s one is still waiting.
  expect(rec.order).toEqual([ds[3], ds[1], ds[2], ds[0]]);
  expect(ds[4]!.armed).toBe(true);
  ds[4]!.disarm();
  await until(() => !wheel.running);
});

test('100k deadlines: one timer for all of them, memory per deadline, each fires once', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const wheel = new DeadlineWheel(TICK);
  let fired = 0;
  let early = 0;
  const owner: DeadlineOwner = { onDeadline: (d) => { fired++; if (performance.now() < d.at) early++; } };
  const N = 100_000;
  const all = new Array<Deadline>(N);
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const timers = timersCreatedBy(() => {
    for (let i = 0; i < N; i++) {
      all[i] = new Deadline(owner, wheel);
      all[i]!.arm(30 + (i % 200));
    }
  });
  gc();
  const perDeadline = (process.memoryUsage().heapUsed - heapBefore) / N;
  expect(wheel.size).toBe(N);
  // One timer for the wheel, none per deadline.
  expect(timers).toBe(1);
  expect(wheel.running).toBe(true);
  // A deadline is one small object (links, time, owner); a Timeout and its closure would not fit.
  expect(perDeadline).toBeLessThan(200);
  // Half are disarmed: they never fire; the other half each fire once.
  for (let i = 0; i < N; i += 2) all[i]!.disarm();
  expect(wheel.size).toBe(N / 2);
  await until(() => fired >= N / 2, 20_000);
  await sleep(50);
  expect(fired).toBe(N / 2);
  expect(early).toBe(0);
  expect(wheel.size).toBe(0);
  await until(() => !wheel.running);
  // Re-arming them all starts the one timer again, and no other.
  expect(timersCreatedBy(() => { for (const d of all) d.arm(10_000); })).toBe(1);
  for (const d of all) d.disarm();
  expect(wheel.size).toBe(0);
});
