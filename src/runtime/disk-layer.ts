import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DiskRuntimeLayer } from '../config/runtime-model';

/** Bounds on one read of a disk layer: a tree a peer can grow must not grow the proxy without end. */
export interface DiskLayerLimits {
  readonly maxFiles: number;
  readonly maxFileBytes: number;
  readonly maxTotalBytes: number;
  /** Directory levels below the layer's directory; also what stops a symlink loop. */
  readonly maxDepth: number;
}

export const DEFAULT_DISK_LAYER_LIMITS: DiskLayerLimits = { maxFiles: 10_000, maxFileBytes: 1 << 20, maxTotalBytes: 16 << 20, maxDepth: 16 };

export interface DiskLayerRead {
  readonly values: ReadonlyMap<string, string>;
  /** One line per file or directory that could not be used: its path, then why. */
  readonly errors: readonly string[];
}

/**
 * Reads a layer's tree: each file is a key (its path below `dir`, '/' read as '.'), its content
 * the value with '#' comment lines dropped and whitespace trimmed. Names starting with '.' are
 * skipped, since a dot inside a name would make a key no path could spell back. A missing
 * directory is an empty layer, as a tree not yet published is. Synchronous on purpose: a read is
 * bounded by the limits and happens at start and on a link swap, never per request.
 */
export function readDiskLayer(dir: string, limits: DiskLayerLimits = DEFAULT_DISK_LAYER_LIMITS): DiskLayerRead {
  const values = new Map<string, string>();
  const errors: string[] = [];
  let files = 0;
  let bytes = 0;
  let full = false;
  const walk = (at: string, prefix: string, depth: number): void => {
    if (full) return;
    let names: string[];
    try {
      names = fs.readdirSync(at).sort();
    } catch (err) {
      if (depth > 0 || (err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`${at}: ${(err as Error).message}`);
      return;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const file = path.join(at, name);
      const key = prefix ? `${prefix}.${name}` : name;
      let st: fs.Stats;
      try {
        st = fs.statSync(file);
      } catch (err) {
        errors.push(`${file}: ${(err as Error).message}`);
        continue;
      }
      if (st.isDirectory()) {
        if (depth + 1 > limits.maxDepth) errors.push(`${file}: deeper than ${limits.maxDepth} levels; skipped`);
        else walk(file, key, depth + 1);
        if (full) return;
        continue;
      }
      if (!st.isFile()) continue;
      if (files >= limits.maxFiles) {
        errors.push(`${file}: more than ${limits.maxFiles} files; the rest are skipped`);
        full = true;
        return;
      }
      if (st.size > limits.maxFileBytes) {
        errors.push(`${file}: ${st.size} bytes is over the ${limits.maxFileBytes}-byte limit; skipped`);
        continue;
      }
      if (bytes + st.size > limits.maxTotalBytes) {
        errors.push(`${file}: the layer is over its ${limits.maxTotalBytes}-byte total; skipped`);
        continue;
      }
      try {
        const raw = fs.readFileSync(file, 'utf8').slice(0, limits.maxFileBytes);
        files++;
        bytes += Buffer.byteLength(raw);
        values.set(key, fileValue(raw));
      } catch (err) {
        errors.push(`${file}: ${(err as Error).message}`);
      }
    }
  };
  walk(dir, '', 0);
  return { values, errors };
}

function fileValue(raw: string): string {
  return raw
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n')
    .trim();
}

/** Where a path leads once every link is followed; null while nothing is there. */
function target(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

export interface DiskLayerWatchOptions {
  readonly pollMs: number;
  readonly limits: DiskLayerLimits;
  readonly onErrors: (layer: string, errors: readonly string[]) => void;
  readonly onReload: (layer: string, keys: number) => void;
}

/**
 * A disk layer kept current: read now, then read again whenever its symlink root resolves to a
 * different place. Polling the link is one realpath per interval, and catches a swap made by
 * `ln -s … && mv -T`, which is how such trees are published.
 */
export class DiskLayerSource {
  #values: ReadonlyMap<string, string> = new Map();
  #target: string | null;
  readonly #timer: NodeJS.Timeout;

  constructor(readonly layer: DiskRuntimeLayer, private readonly options: DiskLayerWatchOptions) {
    this.#target = target(layer.symlinkRoot);
    this.#load();
    this.#timer = setInterval(() => this.#poll(), options.pollMs);
    this.#timer.unref();
  }

  get values(): ReadonlyMap<string, string> {
    return this.#values;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #poll(): void {
    const now = target(this.layer.symlinkRoot);
    if (now === this.#target) return;
    this.#target = now;
    this.#load();
    this.options.onReload(this.layer.name, this.#values.size);
  }

  #load(): void {
    const read = readDiskLayer(this.layer.directory, this.options.limits);
    this.#values = read.values;
    if (read.errors.length > 0) this.options.onErrors(this.layer.name, read.errors);
  }
}
