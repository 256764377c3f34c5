import type { Cell } from '../stats/registry';
import type { LogTarget } from './targets';

// One log destination shared by every logger that names its path. Lines are appended to a batch
// in memory, never written on the request's path: the batch goes out in one write when the
// flush timer fires or when it passes the flush size, whichever is first. While a write is in
// flight new lines wait for the next one. Past `maxQueuedBytes` (queued and being written) a line
// is dropped and counted: a stalled disk or a full pipe costs log lines, never memory.

export interface LogFileLimits {
  /** How long a line may wait for its write (Envoy's --file-flush-interval-msec; ours 1 s). */
  readonly flushIntervalMs: number;
  /** A batch this large is written at once (Envoy's 64 KiB). */
  readonly flushBytes: number;
  /** Bytes queued and in flight before new lines are dropped. */
  readonly maxQueuedBytes: number;
}

export const DEFAULT_LOG_FILE_LIMITS: LogFileLimits = { flushIntervalMs: 1000, flushBytes: 64 * 1024, maxQueuedBytes: 16 * 1024 * 1024 };

/** Envoy's `access_log_file.*` stats, plus the lines dropped at the bound (ours). */
export interface LogFileStats {
  readonly writeBuffered: Cell;
  readonly writeCompleted: Cell;
  readonly writeFailed: Cell;
  readonly flushedByTimer: Cell;
  readonly reopenFailed: Cell;
  /** Gauge: bytes waiting or being written, over every file. */
  readonly totalBuffered: Cell;
  readonly dropped: Cell;
}

export class LogFile {
  #lines: string[] = [];
  #queued = 0;
  #inFlight = 0;
  #writing = false;
  #reopen = false;
  #timer: NodeJS.Timeout | null = null;
  #idle: Array<() => void> = [];
  #closed = false;

  constructor(
    readonly path: string,
    private readonly target: LogTarget,
    private readonly limits: LogFileLimits,
    private readonly stats: LogFileStats,
    private readonly onError: (what: string, err: Error) => void,
  ) {}

  /** Queues one line (its line break included). Never blocks, never throws. */
  write(line: string): void {
    const bytes = Buffer.byteLength(line);
    if (this.#closed || this.#queued + this.#inFlight + bytes > this.limits.maxQueuedBytes) {
      this.stats.dropped.inc();
      return;
    }
    this.#lines.push(line);
    this.#queued += bytes;
    this.stats.writeBuffered.inc();
    this.stats.totalBuffered.inc(bytes);
    if (this.#queued >= this.limits.flushBytes) this.#pump();
    else this.#arm();
  }

  #arm(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.stats.flushedByTimer.inc();
      this.#pump();
    }, this.limits.flushIntervalMs);
    // Never what keeps the process alive: a stopping proxy flushes (Proxy.stop).
    this.#timer.unref();
  }

  /** Writes out everything queued; resolves once it is written (or failed). */
  flush(): Promise<void> {
    return new Promise((resolve) => {
      this.#idle.push(resolve);
      this.#pump();
    });
  }

  /** SIGUSR1: the file is closed and opened again by its path, after the write in flight (logrotate). */
  reopen(): void {
    this.#reopen = true;
    this.#pump();
  }

  /** Flushes, then closes; later lines are dropped. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    await new Promise<void>((resolve) => this.target.close((err) => {
      if (err) this.onError('close', err);
      resolve();
    }));
  }

  #pump(): void {
    if (this.#writing) return;
    if (this.#reopen) {
      this.#reopen = false;
      this.#writing = true;
      this.target.reopen((err) => {
        this.#writing = false;
        if (err) {
          this.stats.reopenFailed.inc();
          this.onError('reopen', err);
        }
        this.#pump();
      });
      return;
    }
    if (this.#lines.length === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
      return;
    }
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = Buffer.from(this.#lines.join(''));
    this.#lines = [];
    this.#inFlight = this.#queued;
    this.#queued = 0;
    this.#writing = true;
    this.target.write(batch, (err) => {
      this.#writing = false;
      this.stats.totalBuffered.dec(this.#inFlight);
      this.#inFlight = 0;
      if (err) {
        this.stats.writeFailed.inc();
        this.onError('write', err);
      } else this.stats.writeCompleted.inc();
      // What queued meanwhile goes now if someone waits for it or it is already a full batch;
      // otherwise on its timer.
      if (this.#idle.length > 0 || this.#reopen || this.#queued >= this.limits.flushBytes) this.#pump();
      else if (this.#lines.length > 0) this.#arm();
    });
  }
}
