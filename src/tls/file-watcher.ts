import * as fs from 'node:fs';
import * as path from 'node:path';

// Notices when certificate and key files change, the way Envoy's watched files do: the file's
// directory is watched, not the file, because a rotation replaces the file rather than writing
// into it (a rename over it, or Kubernetes' swap of the `..data` symlink its path goes through),
// and a watch on the old inode would never fire again. An event only schedules a check; the
// check compares each file's identity (device, inode, size, times, following symlinks) with the
// last one seen, so only a real change is reported, once, after the writer has gone quiet.

export interface FileWatcherOptions {
  /** Directories watched with fs.watch (one inotify watch each); further directories are polled. Default 64. */
  readonly maxDirectoryWatchers?: number;
  /** Quiet time after the last event before the files are checked (a writer may replace the cert, then the key). Default 100 ms. */
  readonly debounceMs?: number;
  /** Check interval of a polled directory (fs.watch unavailable, failed, or over the bound). Default 1 s. */
  readonly pollIntervalMs?: number;
}

interface Subscription {
  readonly files: ReadonlySet<string>;
  readonly onChange: () => void;
}

interface WatchedDirectory {
  readonly dir: string;
  watcher: fs.FSWatcher | null;
  poll: NodeJS.Timeout | null;
  debounce: NodeJS.Timeout | null;
  /** Last identity seen per file of this directory that a subscription names. */
  readonly seen: Map<string, string>;
  readonly subscriptions: Set<Subscription>;
}

export class FileWatcher {
  readonly #maxWatchers: number;
  readonly #debounceMs: number;
  readonly #pollMs: number;
  readonly #dirs = new Map<string, WatchedDirectory>();
  #watchers = 0;
  #closed = false;

  constructor(options: FileWatcherOptions = {}) {
    this.#maxWatchers = options.maxDirectoryWatchers ?? 64;
    this.#debounceMs = options.debounceMs ?? 100;
    this.#pollMs = options.pollIntervalMs ?? 1000;
  }

  /** Directories watched with fs.watch, and those polled. */
  get counts(): { readonly watched: number; readonly polled: number } {
    let polled = 0;
    for (const d of this.#dirs.values()) if (d.poll) polled++;
    return { watched: this.#watchers, polled };
  }

  /**
   * Calls `onChange` (at most once per check) whenever one of `files` is replaced, rewritten,
   * appears or disappears. Returns the function that stops watching.
   */
  watch(files: readonly string[], onChange: () => void): () => void {
    if (this.#closed || files.length === 0) return () => {};
    const sub: Subscription = { files: new Set(files.map((f) => path.resolve(f))), onChange };
    const dirs = new Set<WatchedDirectory>();
    for (const file of sub.files) {
      const d = this.#directory(path.dirname(file));
      if (!d.seen.has(file)) d.seen.set(file, identity(file));
      d.subscriptions.add(sub);
      dirs.add(d);
    }
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      for (const d of dirs) {
        d.subscriptions.delete(sub);
        if (d.subscriptions.size === 0) this.#drop(d);
        else forgetUnnamed(d);
      }
    };
  }

  close(): void {
    this.#closed = true;
    for (const d of [...this.#dirs.values()]) this.#drop(d);
  }

  #directory(dir: string): WatchedDirectory {
    let d = this.#dirs.get(dir);
    if (d) return d;
    d = { dir, watcher: null, poll: null, debounce: null, seen: new Map(), subscriptions: new Set() };
    this.#dirs.set(dir, d);
    if (this.#watchers < this.#maxWatchers && this.#startWatcher(d)) return d;
    this.#startPolling(d);
    return d;
  }

  #startWatcher(d: WatchedDirectory): boolean {
    try {
      d.watcher = fs.watch(d.dir, { persistent: false }, () => this.#schedule(d));
    } catch {
      return false;
    }
    this.#watchers++;
    d.watcher.on('error', () => {
      // The directory went away or the watch broke: keep going by polling.
      this.#stopWatcher(d);
      if (this.#dirs.get(d.dir) === d) {
        this.#startPolling(d);
        this.#schedule(d);
      }
    });
    return true;
  }

  #stopWatcher(d: WatchedDirectory): void {
    if (!d.watcher) return;
    d.watcher.close();
    d.watcher = null;
    this.#watchers--;
  }

  #startPolling(d: WatchedDirectory): void {
    if (d.poll) return;
    d.poll = setInterval(() => this.#check(d), this.#pollMs);
    d.poll.unref();
  }

  #schedule(d: WatchedDirectory): void {
    if (d.debounce) clearTimeout(d.debounce);
    d.debounce = setTimeout(() => {
      d.debounce = null;
      this.#check(d);
    }, this.#debounceMs);
    d.debounce.unref();
  }

  #check(d: WatchedDirectory): void {
    const changed = new Set<string>();
    for (const [file, before] of d.seen) {
      const now = identity(file);
      if (now !== before) {
        d.seen.set(file, now);
        changed.add(file);
      }
    }
    if (changed.size === 0) return;
    for (const sub of [...d.subscriptions]) {
      if (!d.subscriptions.has(sub)) continue;
      for (const f of changed) {
        if (sub.files.has(f)) {
          sub.onChange();
          break;
        }
      }
    }
  }

  #drop(d: WatchedDirectory): void {
    this.#stopWatcher(d);
    if (d.poll) clearInterval(d.poll);
    if (d.debounce) clearTimeout(d.debounce);
    d.poll = null;
    d.debounce = null;
    this.#dirs.delete(d.dir);
  }
}

function forgetUnnamed(d: WatchedDirectory): void {
  for (const file of d.seen.keys()) {
    let named = false;
    for (const sub of d.subscriptions) named ||= sub.files.has(file);
    if (!named) d.seen.delete(file);
  }
}

function identity(file: string): string {
  try {
    const s = fs.statSync(file, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? ''}`;
  }
}
