import type { ResponseTap } from '../compare/capture';
import type { HeaderMap } from '../http/headers';
import type { ShadowCounters } from '../stats/scopes';
import type { UpstreamCluster } from '../upstream/cluster-manager';
import { ShadowBufferBudget } from './buffer-budget';
import { FAILED, type InFlightSlots, ShadowExchange } from './exchange';

/** How one shadow ended, for sync mode and afterMirror. */
export interface ShadowResult {
  /** A response arrived (any status). */
  readonly ok: boolean;
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** Up to `captureBodyBytes` of the response body. */
  readonly body: Buffer;
  readonly truncated: boolean;
  readonly durationMs: number;
}

/** What the extended policies add to a shadow; Envoy's policies use ENVOY_SHADOW. */
export interface ShadowOptions {
  /** A request body larger than this drops the shadow (0: no limit but the buffer cap). */
  readonly maxBodyBytes: number;
  /** Until the request has a connection (0: none). */
  readonly connectTimeoutMs: number;
  /** Until the whole body has been taken by the connection (0: none). */
  readonly sendTimeoutMs: number;
  /** Idle time waiting for response headers or body (0: none). */
  readonly readTimeoutMs: number;
  readonly retry: { readonly count: number; readonly onConnectFailure: boolean; readonly onReset: boolean; readonly on5xx: boolean } | null;
  /** Response body bytes to keep for `onDone` (0: none). */
  readonly captureBodyBytes: number;
  /** Called once when the shadow ends, however it ends. */
  readonly onDone: ((result: ShadowResult) => void) | null;
  /** Shadows in flight per cluster before this one is dropped (0: the writer's limit). */
  readonly maxInFlight: number;
  /** A compared shadow: its response is read whole into this (see src/compare), not cut at the drain budget. */
  readonly capture?: ShadowCapture | null;
}

/** A compared shadow's response capture; a retry starts it over. */
export interface ShadowCapture extends ResponseTap {
  restart(): void;
  /** `listener` runs if the comparison stops waiting for the response (compare.timeout): the shadow is then let go. */
  onGiveUp(listener: () => void): void;
}

export const ENVOY_SHADOW: ShadowOptions = {
  maxBodyBytes: 0,
  connectTimeoutMs: 0,
  sendTimeoutMs: 0,
  readTimeoutMs: 0,
  retry: null,
  captureBodyBytes: 0,
  onDone: null,
  maxInFlight: 0,
};

/** One shadow to send: already selected, sampled and cloned. */
export interface ShadowRequest {
  readonly cluster: UpstreamCluster;
  readonly stats: ShadowCounters;
  readonly method: string;
  readonly path: string;
  readonly headers: HeaderMap;
  /** True when body chunks will follow through the returned stream. */
  readonly hasBody: boolean;
  /** Envoy gives a shadow the route's timeout; 0 means none. */
  readonly timeoutMs: number;
  readonly options: ShadowOptions;
  /** The client's protocol, for clusters that follow it (use_downstream_protocol_config). */
  readonly downstreamProtocol?: 'HTTP/1.1' | 'HTTP/2';
}

/** Where the request body goes for one shadow. Never blocks and never throws. */
export interface ShadowStream {
  write(chunk: Buffer): void;
  /** The body is complete; `trailers` are the request's, when it had any (HTTP/2 shadows send them). */
  end(trailers?: Record<string, string> | null): void;
  /** The client went away before its request was complete; the shadow would be truncated. */
  abort(): void;
}

export interface ShadowWriter {
  /**
   * Starts a shadow, fire-and-forget. Returns the stream for its body, or null when the shadow
   * was dropped at once (in-flight cap) or skipped (no healthy host); either is counted.
   */
  start(request: ShadowRequest): ShadowStream | null;
}

export interface ShadowLimits {
  /** Shadows in flight per mirror cluster before new ones are dropped. */
  readonly maxInFlightPerCluster: number;
  /** Body bytes a shadow may hold while its upstream is slower than the client. */
  readonly maxBufferedBodyBytes: number;
  /** Shadows in flight over every mirror cluster together before new ones are dropped. */
  readonly maxInFlightTotal: number;
  /** Body bytes every shadow together may hold; the shadow whose chunk passes it is dropped. */
  readonly maxTotalBufferedBodyBytes: number;
}

export const DEFAULT_SHADOW_LIMITS: ShadowLimits = {
  maxInFlightPerCluster: 1000,
  maxBufferedBodyBytes: 1024 * 1024,
  maxInFlightTotal: 10_000,
  maxTotalBufferedBodyBytes: 64 * 1024 * 1024,
};


/**
 * Sends shadows on the mirror cluster's own keep-alive pools. Each shadow is bounded in time
 * (its timeouts), in memory (its body buffer, and the sum of every shadow's) and in number (in
 * flight per cluster and in all); what goes past a bound is dropped and counted, and nothing
 * flows back towards the primary.
 */
export class PooledShadowWriter implements ShadowWriter, InFlightSlots {
  readonly #inFlight = new Map<string, number>();
  #inFlightTotal = 0;
  readonly budget: ShadowBufferBudget;

  constructor(readonly limits: ShadowLimits = DEFAULT_SHADOW_LIMITS) {
    this.budget = new ShadowBufferBudget(limits.maxTotalBufferedBodyBytes);
  }

  inFlight(cluster: string): number {
    return this.#inFlight.get(cluster) ?? 0;
  }

  /** Shadows in flight over every cluster. */
  get inFlightTotal(): number {
    return this.#inFlightTotal;
  }

  // implements ShadowWriter
  start(request: ShadowRequest): ShadowStream | null {
    const name = request.cluster.name;
    const inFlight = this.#inFlight.get(name) ?? 0;
    if (inFlight >= (request.options.maxInFlight || this.limits.maxInFlightPerCluster)) {
      request.stats.dropped('inflight_cap');
      request.options.capture?.fail('dropped');
      request.options.onDone?.(FAILED);
      return null;
    }
    if (this.#inFlightTotal >= this.limits.maxInFlightTotal) {
      request.stats.dropped('total_inflight_cap');
      request.options.capture?.fail('dropped');
      request.options.onDone?.(FAILED);
      return null;
    }
    // A mirror with no healthy host left, or only ejected ones, costs nothing: skipped at once
    // (Envoy's panic mode would send to all of them). With some healthy, the balancer decides.
    const availability = request.cluster.availability();
    const host = availability === 'available' ? request.cluster.pick() : null;
    if (host === null) {
      request.cluster.stats.noneHealthy.inc();
      request.stats.skipped(availability === 'all_ejected' ? 'all_hosts_ejected' : 'no_healthy_host');
      request.options.capture?.fail('error');
      request.options.onDone?.(FAILED);
      return null;
    }
    request.stats.picked?.(host.addressPort);
    this.#inFlight.set(name, inFlight + 1);
    this.#inFlightTotal++;
    const exchange = new ShadowExchange(request, host, this.limits.maxBufferedBodyBytes, this, this.budget);
    exchange.dispatch();
    return exchange;
  }

  // implements InFlightSlots
  shadowEnded(cluster: string): void {
    this.#inFlight.set(cluster, (this.#inFlight.get(cluster) ?? 1) - 1);
    this.#inFlightTotal--;
  }
}
