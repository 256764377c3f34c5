import type { Runtime } from '../runtime/runtime';

/**
 * The overload manager's envoy.resource_monitors.global_downstream_max_connections: one count of
 * active downstream connections over every listener (but those with ignore_global_conn_limit).
 * A connection over the limit is closed at once, as Envoy's listener rejects it on accept.
 */
export class GlobalConnectionLimit {
  #active = 0;
  /** null: no limit. */
  max: number | null = null;

  get active(): number {
    return this.#active;
  }

  /** Takes a place for a new connection; false when the limit is reached. */
  tryAcquire(): boolean {
    if (this.max !== null && this.#active >= this.max) return false;
    this.#active++;
    return true;
  }

  release(): void {
    this.#active--;
  }
}

/** Envoy's per-listener connection limit lives in runtime under this key (no limit by default). */
export function listenerLimitKey(listenerName: string): string {
  return `envoy.resource_limits.listener.${listenerName}.connection_limit`;
}

/** The listener's connection limit read from runtime at accept time, as Envoy does; null: none. */
export function listenerConnectionLimit(runtime: Runtime | null, listenerName: string): number | null {
  const raw = runtime?.get(listenerLimitKey(listenerName));
  if (raw === undefined || !/^\d+$/.test(raw.trim())) return null;
  return Number(raw);
}
