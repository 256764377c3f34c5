// Coarse deadlines for the request path: one timer per wheel instead of a setTimeout and a
// clearTimeout per exchange. A hashed timing wheel (Varghese & Lauck): slots of one tick each,
// a doubly linked list of deadlines per slot, and a sweep every tick that fires what is due.
//
// Why coarse is right here: a route, per-try or shadow timeout is a bound on a peer, counted in
// tens of milliseconds at least (the smallest in the tests is 100 ms), and nearly every one is
// disarmed long before it passes. A deadline never fires before its time (each is checked
// against the clock, not against its slot) and fires at the first sweep after it, so at most
// one tick late plus whatever the event loop itself is late by. While nothing is armed no
// timer runs; the wheel's one timer is unref'd, it never keeps the process alive on its own.

/** The default tick: 10 ms late at most, 100 sweeps a second while anything is armed. */
export const DEFAULT_TICK_MS = 10;
/** Slots in the default wheel (a power of two): one turn is 10.24 s; longer deadlines go round again. */
const DEFAULT_SLOTS = 1024;

/** Whoever owns a deadline hears of it passing through this method (no closure per arm). */
export interface DeadlineOwner {
  /** `now`: the sweep's clock reading (performance.now()), at or after the deadline's time. */
  onDeadline(deadline: Deadline, now: number): void;
}

/**
 * One deadline, made once per exchange (or attempt) and armed, re-armed and disarmed as often
 * as needed. Its links are the wheel's; only the wheel writes them.
 */
export class Deadline {
  /** When it passes (performance.now(), ms); meaningful while armed. */
  at = 0;
  /** The wheel's: the slot list it is on (-1: not armed), and its neighbours there. */
  slot = -1;
  next: Deadline | null = null;
  prev: Deadline | null = null;

  constructor(
    readonly owner: DeadlineOwner,
    readonly wheel: DeadlineWheel = sharedWheel,
  ) {}

  get armed(): boolean {
    return this.slot >= 0;
  }

  /** (Re)arms it to pass `ms` from now. */
  arm(ms: number): void {
    this.wheel.arm(this, ms);
  }

  disarm(): void {
    if (this.slot >= 0) this.wheel.disarm(this);
  }

  /** Time left before it passes (0 when due or not armed). */
  remainingMs(now: number = performance.now()): number {
    return this.slot >= 0 ? Math.max(0, this.at - now) : 0;
  }
}

/**
 * The wheel. Arm and disarm are O(1); a sweep costs the deadlines in the slots it passes (a
 * deadline more than one turn away is looked at once per turn). Deadlines that fall due in
 * one sweep fire in the order of their times.
 */
export class DeadlineWheel {
  readonly #tickMs: number;
  readonly #mask: number;
  /** One list head per slot, and one more (index `#due`) for deadlines being fired. */
  readonly #heads: Array<Deadline | null>;
  readonly #due: number;
  /** The due list's tail, so that sorted insertion usually appends. */
  #dueTail: Deadline | null = null;
  /** The tick the next sweep starts at: its slot is swept again until the clock is past it. */
  #cursor = 0;
  #count = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #onTick = (): void => this.#sweep();

  constructor(tickMs: number = DEFAULT_TICK_MS, slots: number = DEFAULT_SLOTS) {
    if (!(tickMs > 0)) throw new RangeError('a deadline wheel needs a positive tick');
    if (!Number.isInteger(slots) || slots < 2 || (slots & (slots - 1)) !== 0) throw new RangeError('a deadline wheel needs a power-of-two slot count');
    this.#tickMs = tickMs;
    this.#mask = slots - 1;
    this.#due = slots;
    this.#heads = new Array<Deadline | null>(slots + 1).fill(null);
  }

  /** Deadlines armed (and not yet fired). */
  get size(): number {
    return this.#count;
  }

  /** Whether the wheel's timer is running. */
  get running(): boolean {
    return this.#timer !== null;
  }

  /** Arms `d` to pass `ms` (finite, ≥ 0) from now, moving it if it was armed already. */
  arm(d: Deadline, ms: number): void {
    const now = performance.now();
    const at = now + ms;
    if (d.slot >= 0) {
      // Later than it was: left where it is, the sweep that reaches it files it further on.
      // That keeps a timeout refreshed on every chunk (per_try_idle_timeout) at one store.
      if (at >= d.at && d.slot !== this.#due) {
        d.at = at;
        return;
      }
      this.#unlink(d);
      this.#count--;
    }
    d.at = at;
    if (this.#timer === null) this.#start(now);
    this.#file(d);
    this.#count++;
  }

  disarm(d: Deadline): void {
    if (d.slot < 0) return;
    this.#unlink(d);
    this.#count--;
  }

  /** Fires what is due now (the timer's tick). */
  #sweep(): void {
    const now = performance.now();
    // The slot holding `now` is swept too (what in it is due fires) and swept again next time.
    const last = Math.ceil(now / this.#tickMs);
    const steps = Math.min(last - this.#cursor + 1, this.#mask + 1);
    let tick = this.#cursor;
    this.#cursor = last;
    for (let i = 0; i < steps; i++, tick++) {
      const slot = tick & this.#mask;
      let d: Deadline | null = this.#heads[slot] ?? null;
      this.#heads[slot] = null;
      while (d !== null) {
        const next: Deadline | null = d.next;
        d.next = d.prev = null;
        if (d.at <= now) this.#toDue(d);
        else this.#file(d);
        d = next;
      }
    }
    try {
      for (let d: Deadline | null = this.#heads[this.#due] ?? null; d !== null; d = this.#heads[this.#due] ?? null) {
        this.#unlink(d);
        this.#count--;
        d.owner.onDeadline(d, now);
      }
    } finally {
      // An owner that threw leaves the rest due: the next sweep fires them.
      if (this.#count === 0 && this.#timer !== null) {
        clearInterval(this.#timer);
        this.#timer = null;
      }
    }
  }

  #start(now: number): void {
    this.#cursor = Math.ceil(now / this.#tickMs);
    this.#timer = setInterval(this.#onTick, this.#tickMs);
    this.#timer.unref();
  }

  /** Onto the slot of the first tick at or after its time (never one the cursor has passed). */
  #file(d: Deadline): void {
    const slot = Math.max(Math.ceil(d.at / this.#tickMs), this.#cursor) & this.#mask;
    const head = this.#heads[slot] ?? null;
    d.slot = slot;
    d.prev = null;
    d.next = head;
    if (head !== null) head.prev = d;
    this.#heads[slot] = d;
  }

  /** Onto the due list, kept in order of time (ties in the order they arrive). */
  #toDue(d: Deadline): void {
    d.slot = this.#due;
    let after = this.#dueTail;
    while (after !== null && after.at > d.at) after = after.prev;
    if (after === null) {
      const head = this.#heads[this.#due] ?? null;
      d.prev = null;
      d.next = head;
      if (head !== null) head.prev = d;
      else this.#dueTail = d;
      this.#heads[this.#due] = d;
    } else {
      d.prev = after;
      d.next = after.next;
      if (after.next !== null) after.next.prev = d;
      else this.#dueTail = d;
      after.next = d;
    }
  }

  #unlink(d: Deadline): void {
    if (d.prev !== null) d.prev.next = d.next;
    else this.#heads[d.slot] = d.next;
    if (d.next !== null) d.next.prev = d.prev;
    else if (d.slot === this.#due) this.#dueTail = d.prev;
    d.next = d.prev = null;
    d.slot = -1;
  }
}

/** The process's wheel, shared by every exchange. */
export const sharedWheel = new DeadlineWheel();
