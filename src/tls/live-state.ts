import type { CommonTlsContext } from '../config/transport-model';
import { MaterialError, type TlsMaterial, resolveMaterial, secretRefs } from './material';
import type { SecretStore } from './secret-store';

// The state a TLS context builds from its material, kept current: rebuilt when a secret it uses
// or a file it read changes. A rebuild that fails (a half-written file, a key that does not fit
// the new certificate) keeps the last good state, as Envoy keeps its old context when an update
// is rejected, and the next change tries again.

export class LiveTlsState<T> {
  #current: T | null = null;
  #error: string | null = null;
  #files: readonly string[] = [];
  #unwatchFiles: () => void = () => {};
  readonly #unsubscribeSecrets: () => void;
  readonly #listeners = new Set<() => void>();
  #closed = false;

  /**
   * Builds the first state. With no SDS secret involved a failure throws (a static config that
   * cannot load, which Envoy refuses too); with SDS the state stays not ready and says why.
   */
  constructor(
    private readonly common: CommonTlsContext,
    private readonly store: SecretStore,
    private readonly build: (m: TlsMaterial) => T,
  ) {
    const refs = secretRefs(common);
    this.#unsubscribeSecrets = store.subscribe(refs, () => this.#rebuild());
    try {
      this.#rebuildOrThrow();
    } catch (err) {
      if (refs.length === 0) {
        this.close();
        throw err;
      }
      this.#error = (err as Error).message;
    }
  }

  /** The current state; null while an SDS secret has not arrived (or never built). */
  get current(): T | null {
    return this.#current;
  }

  /** Why the last build failed or what it waits for; null after a successful build. */
  get error(): string | null {
    return this.#error;
  }

  /** Calls `listener` after every successful rebuild. Returns the function that stops it. */
  onUpdate(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribeSecrets();
    this.#unwatchFiles();
    this.#listeners.clear();
  }

  #rebuild(): void {
    if (this.#closed) return;
    try {
      if (this.#rebuildOrThrow()) for (const l of [...this.#listeners]) l();
    } catch (err) {
      this.#error = (err as Error).message;
    }
  }

  /** True when a new state was built. */
  #rebuildOrThrow(): boolean {
    let r;
    try {
      r = resolveMaterial(this.common, this.store);
    } catch (err) {
      if (err instanceof MaterialError) this.#watch([...new Set([...this.#files, ...err.files])]);
      throw err;
    }
    if (r.kind === 'waiting') {
      this.#error = `waiting for secret(s) ${r.missing.map((m) => `'${m.name}'`).join(', ')}`;
      return false;
    }
    this.#watch(r.material.files);
    this.#current = this.build(r.material);
    this.#error = null;
    return true;
  }

  #watch(files: readonly string[]): void {
    // Watched before the build, so a failing file is watched too and its fix is seen.
    if (sameSet(files, this.#files)) return;
    this.#unwatchFiles();
    this.#files = files;
    this.#unwatchFiles = this.store.files.watch(files, () => this.#rebuild());
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(b);
  return a.every((x) => s.has(x));
}
