import type { TypeSubscriber, Subscriptions } from '../xds/mux';

/**
 * A worker's subscription source: the supervisor already validated and ACKed each response, so
 * the worker only delivers it to its own consumer. Names and versions are kept for /config_dump.
 */
export class IpcSubscriptions implements Subscriptions {
  readonly #subscribers = new Map<string, TypeSubscriber>();
  readonly #versions = new Map<string, string>();

  watch(typeUrl: string, _names: string[] | null, subscriber: TypeSubscriber): void {
    this.#subscribers.set(typeUrl, subscriber);
  }

  setNames(): void {
    // The supervisor subscribes; a worker takes what it is given and filters to what it uses.
  }

  version(typeUrl: string): string {
    return this.#versions.get(typeUrl) ?? '';
  }

  /** Returns the consumer's verdict: null when applied. */
  deliver(typeUrl: string, version: string, resources: ReadonlyArray<{ type_url: string; value: Uint8Array }>): string | null {
    const subscriber = this.#subscribers.get(typeUrl);
    if (!subscriber) return null;
    const verdict = subscriber.onResponse(version, resources);
    // A worker's consumer binds nothing ahead (the supervisor checked the response), so its verdict is immediate.
    if (verdict instanceof Promise) throw new Error('a worker subscription cannot wait for a verdict');
    if (verdict === null) this.#versions.set(typeUrl, version);
    return verdict;
  }
}
