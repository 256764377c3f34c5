import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../config/errors';
import type { Logger } from '../../log/logger';
import type { ResourceApplier } from './apply';

// A resources file, watched. We watch the directory, not the file: editors that save by writing
// a temp file and renaming it over the original (vim, many IDEs) and Kubernetes ConfigMap volumes
// (which swap a `..data` symlink) replace the inode, and a watch on the old file would go silent.
// Any event in the directory schedules a re-read after a short debounce (editors emit bursts);
// unchanged text is ignored, so unrelated files in the directory cost one read, not a version.

export class FileSource {
  private readonly file: string;
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastText: string | null = null;

  constructor(
    file: string,
    private readonly applier: ResourceApplier,
    private readonly logger: Logger,
    private readonly debounceMs = 100,
  ) {
    this.file = path.resolve(file);
  }

  /** Loads the file (throws ConfigError when unreadable or invalid), then starts watching; returns the version. */
  start(): string {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new ConfigError([{ path: '', message: `cannot read ${this.file}: ${(err as NodeJS.ErrnoException).message}` }]);
    }
    const result = this.applier.apply(text, this.file);
    if (!result.ok) throw result.error;
    this.lastText = text;
    this.watcher = fs.watch(path.dirname(this.file), { persistent: false }, () => this.schedule());
    this.watcher.on('error', (err) => this.logger.error({ file: this.file, error: err.message }, 'watching the resources file failed'));
    return result.version;
  }

  /** Stops watching; a pending reload is dropped. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
  }

  private schedule(): void {
    if (!this.watcher) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(), this.debounceMs);
  }

  private reload(): void {
    this.timer = null;
    if (!this.watcher) return;
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Mid rename-replace the name is briefly missing; the rename that brings it back fires again.
      if (code === 'ENOENT') this.logger.debug({ file: this.file }, 'resources file missing; waiting for it to reappear');
      else this.logger.error({ file: this.file, error: (err as Error).message }, 'cannot read the resources file; keeping the current snapshot');
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    // apply() logs every issue with its path on rejection and leaves the served snapshot alone.
    this.applier.apply(text, this.file);
  }
}
