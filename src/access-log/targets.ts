import * as fs from 'node:fs';
import type { Writable } from 'node:stream';

// Where a log file's batches physically go: a file opened for appending by its path, or the
// process's standard output or error (for /dev/stdout and /dev/stderr, which may be a pipe a
// plain file write could find full: the stream waits for it instead).

export interface LogTarget {
  write(batch: Buffer, done: (err: Error | null) => void): void;
  /** Closes and opens the path again (a renamed file stays as it is; writes go to a new one). */
  reopen(done: (err: Error | null) => void): void;
  close(done: (err: Error | null) => void): void;
}

/** The target for a logger's path; throws when the file cannot be opened (the config is refused). */
export function openTarget(path: string): LogTarget {
  if (path === '/dev/stdout') return new StreamTarget(process.stdout);
  if (path === '/dev/stderr') return new StreamTarget(process.stderr);
  return new FileTarget(path);
}

class FileTarget implements LogTarget {
  #fd: number | null;

  constructor(private readonly path: string) {
    // Opened now, as Envoy opens an access log file when the config is loaded.
    this.#fd = fs.openSync(path, 'a', 0o644);
  }

  write(batch: Buffer, done: (err: Error | null) => void): void {
    if (this.#fd === null) return done(new Error(`${this.path} is not open`));
    writeAll(this.#fd, batch, 0, done);
  }

  reopen(done: (err: Error | null) => void): void {
    const old = this.#fd;
    this.#fd = null;
    const open = (): void => fs.open(this.path, 'a', 0o644, (err, fd) => {
      if (!err) this.#fd = fd;
      done(err);
    });
    if (old === null) return open();
    fs.close(old, () => open());
  }

  close(done: (err: Error | null) => void): void {
    const fd = this.#fd;
    this.#fd = null;
    if (fd === null) return done(null);
    fs.close(fd, (err) => done(err));
  }
}

/** A short write (a pipe, a signal) leaves the rest of the batch: write it too. */
function writeAll(fd: number, batch: Buffer, from: number, done: (err: Error | null) => void): void {
  fs.write(fd, batch, from, batch.length - from, null, (err, written) => {
    if (err) return done(err);
    if (from + written < batch.length) return writeAll(fd, batch, from + written, done);
    done(null);
  });
}

/** Streams given an error listener: a closed stdout (EPIPE) fails its writes, never the process. */
const GUARDED = new WeakSet<Writable>();

class StreamTarget implements LogTarget {
  constructor(private readonly stream: Writable) {
    if (!GUARDED.has(stream)) {
      GUARDED.add(stream);
      stream.on('error', () => undefined);
    }
  }

  write(batch: Buffer, done: (err: Error | null) => void): void {
    this.stream.write(batch, (err) => done(err ?? null));
  }

  reopen(done: (err: Error | null) => void): void {
    done(null);
  }

  close(done: (err: Error | null) => void): void {
    done(null);
  }
}
