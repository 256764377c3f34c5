import { TYPE_ORDER } from '../config/resources';
import { type AdsStream, type DiscoveryRequest, type DiscoveryResponse } from './ads-stream';

// Per type URL: what we subscribe to, the last version we accepted and the last nonce we got.
// ACKs and NACKs are written here; subscribers never see a nonce (Envoy's GrpcMuxImpl).

/**
 * Most UTF-8 bytes of a NACK's error_detail. Every config error is collected with its field path,
 * so the text grows with the resource (40,000 bad routes made 6 MB, past what a gRPC server
 * takes by default): the first errors say enough, and a control plane keeps only 4 KiB anyway.
 */
export const MAX_NACK_DETAIL_BYTES = 64 * 1024;

/** What a subscriber says of one response: null to accept it, or why it is rejected. */
export type Verdict = string | null;

export interface TypeSubscriber {
  /**
   * A verdict, or a promise of one when accepting needs I/O first (binding a listener's socket);
   * responses are then handled one at a time, in order, and the ACK or NACK waits for it.
   */
  onResponse(version: string, resources: ReadonlyArray<{ type_url: string; value: Uint8Array }>): Verdict | Promise<Verdict>;
}

interface TypeState {
  readonly subscriber: TypeSubscriber;
  /** null: wildcard. */
  names: string[] | null;
  version: string;
  nonce: string;
}

/** What the consumer side needs of a subscription source: the mux, or a worker's IPC feed. */
export interface Subscriptions {
  watch(typeUrl: string, names: string[] | null, subscriber: TypeSubscriber): void;
  setNames(typeUrl: string, names: string[]): void;
  version(typeUrl: string): string;
}

export interface MuxObserver {
  /** A response was accepted (after its ACK was written); workers are fed from here. */
  onAccepted?(response: DiscoveryResponse): void;
  onAck?(typeUrl: string, version: string): void;
  onNack?(typeUrl: string, version: string, error: string): void;
}

export class XdsMux implements Subscriptions {
  readonly #types = new Map<string, TypeState>();
  #stream: AdsStream | null = null;
  #sentNode = false;

  constructor(
    private readonly node: NonNullable<DiscoveryRequest['node']>,
    private readonly observer: MuxObserver = {},
  ) {}

  attach(stream: AdsStream): void {
    this.#stream = stream;
  }

  /** Subscribes to a type: `names` null means wildcard (LDS, CDS). */
  watch(typeUrl: string, names: string[] | null, subscriber: TypeSubscriber): void {
    this.#types.set(typeUrl, { subscriber, names, version: '', nonce: '' });
  }

  /** Changes the names of a named subscription (RDS, EDS); sends a request when they changed. */
  setNames(typeUrl: string, names: string[]): void {
    const state = this.#types.get(typeUrl);
    if (!state) return;
    const sorted = [...new Set(names)].sort();
    if (state.names !== null && sorted.join('\n') === state.names.join('\n')) return;
    state.names = sorted;
    // Asked while handling another type's response: go out after that response's ACK, as Envoy
    // does by pausing EDS during CDS and RDS during LDS.
    if (this.#deferred !== null) this.#deferred.add(typeUrl);
    else this.#send(typeUrl, state, state.version);
  }

  /** Types whose new names wait for the ACK of the response being handled (null: none is). */
  #deferred: Set<string> | null = null;

  version(typeUrl: string): string {
    return this.#types.get(typeUrl)?.version ?? '';
  }

  /** A new stream: nonces of the old one mean nothing; subscribe again in Envoy's order. */
  onStreamOpen(): void {
    this.#sentNode = false;
    this.#streamGeneration++;
    const ordered = [...this.#types.keys()].sort((a, b) => rank(a) - rank(b));
    for (const typeUrl of ordered) {
      const state = this.#types.get(typeUrl)!;
      state.nonce = '';
      // A named type with no names yet has nothing to ask for.
      if (state.names !== null && state.names.length === 0) continue;
      this.#send(typeUrl, state, state.version);
    }
  }

  /** A response whose verdict is still awaited; later ones queue behind it. */
  #busy: Promise<void> | null = null;
  #streamGeneration = 0;

  onResponse(response: DiscoveryResponse): void {
    if (this.#busy) {
      this.#track(this.#busy.then(() => this.#handle(response)));
      return;
    }
    const pending = this.#handle(response);
    if (pending) this.#track(pending);
  }

  #track(p: Promise<void>): void {
    const tracked: Promise<void> = p.then(() => {
      if (this.#busy === tracked) this.#busy = null;
    });
    this.#busy = tracked;
  }

  #handle(response: DiscoveryResponse): Promise<void> | undefined {
    const state = this.#types.get(response.type_url);
    if (!state) return undefined;
    state.nonce = response.nonce;
    let verdict: Verdict | Promise<Verdict>;
    this.#deferred = new Set();
    try {
      verdict = state.subscriber.onResponse(response.version_info, response.resources);
    } catch (err) {
      verdict = `internal error: ${(err as Error).message}`;
    }
    if (verdict instanceof Promise) {
      const generation = this.#streamGeneration;
      return verdict.then((v) => v, (err: unknown) => `internal error: ${(err as Error).message}`).then((v) => {
        // A stream that reconnected meanwhile has subscribed afresh; this nonce means nothing there.
        if (generation === this.#streamGeneration) this.#finish(response, state, v);
        else this.#flushDeferred();
      });
    }
    this.#finish(response, state, verdict);
    return undefined;
  }

  #finish(response: DiscoveryResponse, state: TypeState, verdict: Verdict): void {
    if (verdict === null) {
      state.version = response.version_info;
      this.#send(response.type_url, state, state.version);
      this.observer.onAck?.(response.type_url, response.version_info);
      this.observer.onAccepted?.(response);
    } else {
      // NACK: the previous version stays, and we say why.
      this.#send(response.type_url, state, state.version, verdict);
      this.observer.onNack?.(response.type_url, response.version_info, verdict);
    }
    this.#flushDeferred();
  }

  /** Sends the requests whose names changed while a response was being handled. */
  #flushDeferred(): void {
    const deferred = this.#deferred ?? new Set<string>();
    this.#deferred = null;
    for (const typeUrl of deferred) {
      const other = this.#types.get(typeUrl)!;
      this.#send(typeUrl, other, other.version);
    }
  }

  #send(typeUrl: string, state: TypeState, version: string, error?: string): void {
    if (!this.#stream) return;
    const request: DiscoveryRequest = {
      version_info: version,
      resource_names: state.names ?? [],
      type_url: typeUrl,
      response_nonce: state.nonce,
    };
    if (!this.#sentNode) {
      request.node = this.node;
      this.#sentNode = true;
    }
    // INVALID_ARGUMENT, as Envoy's NACKs carry.
    if (error !== undefined) request.error_detail = { code: 3, message: clipDetail(error) };
    this.#stream.send(request);
  }
}

/** `text` cut to MAX_NACK_DETAIL_BYTES, marked `… [truncated, N bytes]` when cut. */
function clipDetail(text: string): string {
  if (text.length * 3 <= MAX_NACK_DETAIL_BYTES) return text;
  const bytes = Buffer.byteLength(text);
  if (bytes <= MAX_NACK_DETAIL_BYTES) return text;
  const head = Buffer.from(text, 'utf8').subarray(0, MAX_NACK_DETAIL_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return `${head}… [truncated, ${bytes} bytes]`;
}

function rank(typeUrl: string): number {
  const i = TYPE_ORDER.indexOf(typeUrl as (typeof TYPE_ORDER)[number]);
  return i < 0 ? TYPE_ORDER.length : i;
}
