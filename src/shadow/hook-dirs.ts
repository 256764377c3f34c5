import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveHookFile } from './hook-loader';

// Whoever controls config controls what code a hook may run, so config alone cannot name a
// module: the operator lists the directories hooks may come from on the command line
// (--hooks-dir), and every module path is resolved inside one of them.

/** The directories hook modules may be loaded from; none means no hooks at all. */
export class HookDirs {
  /** Real paths (symlinks resolved), so containment cannot be escaped through a link. */
  readonly dirs: readonly string[];

  /** Throws when a directory does not exist or is not a directory. */
  constructor(dirs: readonly string[]) {
    this.dirs = dirs.map((d) => {
      let real: string;
      try {
        real = fs.realpathSync(path.resolve(d));
      } catch {
        throw new Error(`--hooks-dir ${d}: no such directory`);
      }
      if (!fs.statSync(real).isDirectory()) throw new Error(`--hooks-dir ${d}: not a directory`);
      return real;
    });
  }

  static readonly NONE = new HookDirs([]);

  /**
   * The file a hook module path names. A relative path is looked up in each allowed directory in
   * order; an absolute one must lie inside one of them. Throws an Error saying why not.
   */
  locate(modulePath: string): string {
    if (this.dirs.length === 0) {
      throw new Error('hook modules are not allowed: start sidemirror with --hooks-dir DIR to allow hooks from DIR');
    }
    if (path.isAbsolute(modulePath)) return this.#inside(resolveHookFile(modulePath, '/'), modulePath);
    for (const dir of this.dirs) {
      let file: string;
      try {
        file = resolveHookFile(modulePath, dir);
      } catch (err) {
        // A module that exists but cannot be used (directory, .mjs) is reported as it is.
        if (!(err as Error).message.startsWith('hook module not found')) throw err;
        continue;
      }
      return this.#inside(file, modulePath);
    }
    throw new Error(`hook module ${JSON.stringify(modulePath)} not found in ${this.#list()}`);
  }

  #inside(file: string, modulePath: string): string {
    const real = fs.realpathSync(file);
    if (this.dirs.some((d) => real.startsWith(d.endsWith(path.sep) ? d : d + path.sep))) return real;
    throw new Error(`hook module ${JSON.stringify(modulePath)} (${real}) is outside ${this.#list()}`);
  }

  #list(): string {
    return this.dirs.length === 1 ? `the allowed --hooks-dir ${this.dirs[0]}` : `every allowed --hooks-dir (${this.dirs.join(', ')})`;
  }
}
