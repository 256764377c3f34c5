import type { LimitConfig, LimitDecision, MirrorLimiter } from './limiter';

/**
 * The count of one budget in this process: a fixed window aligned to the wall clock
 * (window index = floor(now / windowMs)), reset when the index moves on. Like the Redis counter,
 * every take is counted, limited ones included; a take is allowed iff its count <= the limit.
 */
export class LocalCounter {
  private window = Number.NaN;
  private used = 0;

  /** Counts one take in `windowIndex` and returns the count so far in that window. */
  take(windowIndex: number): number {
    if (windowIndex !== this.window) {
      this.window = windowIndex;
      this.used = 0;
    }
    this.used += 1;
    return this.used;
  }
}

export interface LocalLimiterOptions {
  /** Wall clock in ms; injectable for tests. */
  readonly now?: () => number;
  /** A counter shared with other limiters of the same key (see LocalCounterRegistry). */
  readonly counter?: LocalCounter;
  /** Called once by close(), e.g. to release a shared counter. */
  readonly onClose?: () => void;
}

/** At most `count` mirrors per wall-clock window, counted in memory; decisions are synchronous. */
export class LocalLimiter implements MirrorLimiter {
  private readonly now: () => number;
  private readonly counter: LocalCounter;
  private readonly onClose: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly config: Pick<LimitConfig, 'count' | 'windowMs'>,
    options: LocalLimiterOptions = {},
  ) {
    if (!(config.windowMs > 0)) throw new Error(`mirror limit window must be > 0 ms, got ${config.windowMs}`);
    this.now = options.now ?? Date.now;
    this.counter = options.counter ?? new LocalCounter();
    this.onClose = options.onClose;
  }

  acquire(): LimitDecision {
    const windowIndex = Math.floor(this.now() / this.config.windowMs);
    return this.counter.take(windowIndex) <= this.config.count ? 'allowed' : 'limited';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.();
  }
}

/**
 * Gives limiters with the same key (and window length) one counter in this process, as the Redis
 * store does across processes: a key and a window index name one count. Reference counted, so a
 * budget survives a config update that closes the old limiter after opening the new one.
 */
export class LocalCounterRegistry {
  private readonly counters = new Map<string, { counter: LocalCounter; refs: number }>();

  create(config: Pick<LimitConfig, 'count' | 'windowMs' | 'key'>, now?: () => number): LocalLimiter {
    const id = `${config.windowMs}\u0000${config.key}`;
    let entry = this.counters.get(id);
    if (!entry) {
      entry = { counter: new LocalCounter(), refs: 0 };
      this.counters.set(id, entry);
    }
    entry.refs += 1;
    const held = entry;
    return new LocalLimiter(config, {
      now,
      counter: held.counter,
      onClose: () => {
        held.refs -= 1;
        if (held.refs === 0 && this.counters.get(id) === held) this.counters.delete(id);
      },
    });
  }

  /** Number of live counters; for tests. */
  get size(): number {
    return this.counters.size;
  }
}

export const defaultLocalCounters = new LocalCounterRegistry();
