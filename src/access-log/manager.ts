import type { Logger } from '../log/logger';
import type { StatsRegistry } from '../stats/registry';
import { DEFAULT_LOG_FILE_LIMITS, LogFile, type LogFileLimits, type LogFileStats } from './log-file';
import { type LogTarget, openTarget } from './targets';

/**
 * Envoy's access log manager: one open file per path, shared by every logger of every listener
 * that names it and kept across config updates; SIGUSR1 reopens them all; a stopping proxy
 * flushes them.
 */
export class AccessLogManager {
  readonly #files = new Map<string, LogFile>();
  readonly #stats: LogFileStats;
  readonly limits: LogFileLimits;

  constructor(
    stats: StatsRegistry,
    private readonly logger: Logger,
    limits: Partial<LogFileLimits> = {},
    /** Tests may write somewhere else than the real file system. */
    private readonly open: (path: string) => LogTarget = openTarget,
  ) {
    this.limits = { ...DEFAULT_LOG_FILE_LIMITS, ...definedOnly(limits) };
    this.#stats = {
      writeBuffered: stats.accessLogWriteBuffered.labels({}),
      writeCompleted: stats.accessLogWriteCompleted.labels({}),
      writeFailed: stats.accessLogWriteFailed.labels({}),
      flushedByTimer: stats.accessLogFlushedByTimer.labels({}),
      reopenFailed: stats.accessLogReopenFailed.labels({}),
      totalBuffered: stats.accessLogTotalBuffered.labels({}),
      dropped: stats.accessLogDropped.labels({}),
    };
  }

  /** The shared file for `path`, opened on first use; throws when it cannot be opened. */
  file(path: string): LogFile {
    let f = this.#files.get(path);
    if (!f) {
      let target: LogTarget;
      try {
        target = this.open(path);
      } catch (err) {
        throw new Error(`access log: cannot open "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      f = new LogFile(path, target, this.limits, this.#stats, (what, err) => this.#failed(path, what, err));
      this.#files.set(path, f);
    }
    return f;
  }

  /** SIGUSR1. */
  reopen(): void {
    for (const f of this.#files.values()) f.reopen();
  }

  async flush(): Promise<void> {
    await Promise.all([...this.#files.values()].map((f) => f.flush()));
  }

  /**
   * Writes out what is queued and closes every file, waiting at most `timeoutMs`: a file that
   * cannot take its lines (a pipe nobody reads) must not keep a stopping proxy from exiting.
   */
  async close(timeoutMs = 2000): Promise<void> {
    const files = [...this.#files.values()];
    this.#files.clear();
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([Promise.all(files.map((f) => f.close())), gaveUp]);
    clearTimeout(timer);
  }

  // At most one error line per file per 10 s: a full disk must not flood the process log.
  readonly #lastError = new Map<string, number>();

  #failed(path: string, what: string, err: Error): void {
    const now = Date.now();
    if (now - (this.#lastError.get(path) ?? -Infinity) < 10_000) return;
    this.#lastError.set(path, now);
    this.logger.error({ path, err: (err as NodeJS.ErrnoException).code ?? err.message }, `access log ${what} failed`);
  }
}

function definedOnly<T extends object>(o: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
