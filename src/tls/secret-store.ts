import { createHash, type Hash } from 'node:crypto';
import type { SdsSecretConfig, Secret } from '../config/transport-model';
import { FileWatcher, type FileWatcherOptions } from './file-watcher';

// Secrets by name, from the bootstrap (static_resources.secrets) and from SDS over the ADS
// stream, plus the file watcher every TLS context shares. Static and ADS secrets are two
// namespaces: a reference says which one it means (SdsSecretConfig.source).

export interface SecretStoreOptions {
  readonly files?: FileWatcher | FileWatcherOptions;
}

type Listener = () => void;

function keyOf(ref: SdsSecretConfig): string {
  return `${ref.source}\u0000${ref.name}`;
}

export class SecretStore {
  /** Watches the files certificates, keys and CAs are read from. */
  readonly files: FileWatcher;
  readonly #secrets = new Map<string, { readonly secret: Secret; readonly fingerprint: string }>();
  readonly #listeners = new Map<string, Set<Listener>>();

  constructor(options: SecretStoreOptions = {}) {
    this.files = options.files instanceof FileWatcher ? options.files : new FileWatcher(options.files);
  }

  /** Replaces every static (bootstrap) secret. */
  setStatic(secrets: readonly Secret[]): void {
    this.#replace('static', secrets);
  }

  /**
   * Adds or replaces secrets received over ADS. A secret left out is kept: SDS, like RDS and
   * EDS, need not repeat unchanged resources in a state-of-the-world response.
   */
  setDynamic(secrets: readonly Secret[]): void {
    const changed: string[] = [];
    for (const s of secrets) if (this.#put('ads', s)) changed.push(keyOf({ name: s.name, source: 'ads' }));
    this.#notify(changed);
  }

  /** Forgets ADS secrets (removed by the server, or no longer wanted). */
  removeDynamic(names: readonly string[]): void {
    const changed: string[] = [];
    for (const name of names) {
      const key = keyOf({ name, source: 'ads' });
      if (this.#secrets.delete(key)) changed.push(key);
    }
    this.#notify(changed);
  }

  get(ref: SdsSecretConfig): Secret | null {
    return this.#secrets.get(keyOf(ref))?.secret ?? null;
  }

  /** The secret is there: a static one always is (or the config is wrong), an ADS one once it arrived. */
  ready(ref: SdsSecretConfig): boolean {
    return this.#secrets.has(keyOf(ref));
  }

  /**
   * Calls `listener` after any of `refs` is added, changed or removed. Returns the function that
   * stops it.
   */
  subscribe(refs: readonly SdsSecretConfig[], listener: Listener): () => void {
    const keys = [...new Set(refs.map(keyOf))];
    for (const k of keys) {
      let set = this.#listeners.get(k);
      if (!set) this.#listeners.set(k, (set = new Set()));
      set.add(listener);
    }
    return () => {
      for (const k of keys) {
        const set = this.#listeners.get(k);
        if (!set) continue;
        set.delete(listener);
        if (set.size === 0) this.#listeners.delete(k);
      }
    };
  }

  close(): void {
    this.files.close();
    this.#listeners.clear();
  }

  #replace(source: SdsSecretConfig['source'], secrets: readonly Secret[]): void {
    const changed: string[] = [];
    const names = new Set(secrets.map((s) => s.name));
    for (const key of [...this.#secrets.keys()]) {
      const [src, name] = key.split('\u0000') as [string, string];
      if (src === source && !names.has(name)) {
        this.#secrets.delete(key);
        changed.push(key);
      }
    }
    for (const s of secrets) if (this.#put(source, s)) changed.push(keyOf({ name: s.name, source }));
    this.#notify(changed);
  }

  /** Stores `secret`; true when it differs from what was there. */
  #put(source: SdsSecretConfig['source'], secret: Secret): boolean {
    const key = keyOf({ name: secret.name, source });
    const h = createHash('sha256');
    hashValue(h, secret);
    const fingerprint = h.digest('base64');
    if (this.#secrets.get(key)?.fingerprint === fingerprint) return false;
    this.#secrets.set(key, { secret, fingerprint });
    return true;
  }

  #notify(keys: readonly string[]): void {
    // A context listening to several of the changed secrets rebuilds once.
    const due = new Set<Listener>();
    for (const k of keys) for (const l of this.#listeners.get(k) ?? []) due.add(l);
    for (const l of due) {
      try {
        l();
      } catch {
        // A listener's failure is its own (contexts keep their last good state); the others still run.
      }
    }
  }
}

/** Feeds a plain model value (objects, arrays, strings, numbers, booleans, null, Buffers) to `h`. */
function hashValue(h: Hash, v: unknown): void {
  if (Buffer.isBuffer(v)) {
    h.update(`b${v.length}:`).update(v);
  } else if (Array.isArray(v)) {
    h.update(`a${v.length}:`);
    for (const x of v) hashValue(h, x);
  } else if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    h.update(`o${keys.length}:`);
    for (const k of keys) {
      h.update(`${k.length}:${k}`);
      hashValue(h, (v as Record<string, unknown>)[k]);
    }
  } else {
    const text = JSON.stringify(v) ?? 'undefined';
    h.update(`v${text.length}:${text}`);
  }
}
