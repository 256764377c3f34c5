import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { HeaderMap } from '../http/headers';
import type { ShadowFailReason, ShadowStats } from '../stats/scopes';
import type { UpstreamCluster } from '../upstream/cluster-manager';
import type { Host } from '../upstream/host';

/** One shadow to send: already selected, sampled and cloned. */
export interface ShadowRequest {
  readonly cluster: UpstreamCluster;
  readonly stats: ShadowStats;
  readonly method: string;
  readonly path: string;
  readonly headers: HeaderMap;
  /** True when body chunks will follow through the returned stream. */
  readonly hasBody: boolean;
  /** Envoy gives a shadow the route's timeout; 0 means none. */
  readonly timeoutMs: number;
}

/** Where the request body goes for one shadow. Never blocks and never throws. */
export interface ShadowStream {
  write(chunk: Buffer): void;
  end(): void;
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
}

export const DEFAULT_SHADOW_LIMITS: ShadowLimits = { maxInFlightPerCluster: 1000, maxBufferedBodyBytes: 1024 * 1024 };

/**
 * Sends shadows on the mirror cluster's own keep-alive pools. Each shadow is bounded in time
 * (its timeout), in memory (its body buffer) and in number (in flight per cluster); what goes
 * past a bound is dropped and counted, and nothing flows back towards the primary.
 */
export class PooledShadowWriter implements ShadowWriter {
  readonly #inFlight = new Map<string, number>();

  constructor(readonly limits: ShadowLimits = DEFAULT_SHADOW_LIMITS) {}

  inFlight(cluster: string): number {
    return this.#inFlight.get(cluster) ?? 0;
  }

  // implements ShadowWriter
  start(request: ShadowRequest): ShadowStream | null {
    const name = request.cluster.name;
    const inFlight = this.#inFlight.get(name) ?? 0;
    if (inFlight >= this.limits.maxInFlightPerCluster) {
      request.stats.dropped('inflight_cap');
      return null;
    }
    const host = request.cluster.pick();
    if (host === null) {
      request.cluster.stats.noneHealthy.inc();
      request.stats.skipped('no_healthy_host');
      return null;
    }
    this.#inFlight.set(name, inFlight + 1);
    const exchange = new ShadowExchange(request, host, this.limits.maxBufferedBodyBytes, () => {
      this.#inFlight.set(name, (this.#inFlight.get(name) ?? 1) - 1);
    });
    exchange.dispatch();
    return exchange;
  }
}


class ShadowAbort extends Error {
  constructor(readonly reason: 'timeout' | 'body_cap' | 'client_aborted') {
    super(`shadow aborted: ${reason}`);
  }
}

/** One shadow in flight: feeds its body, discards its response, and counts how it ended. */
class ShadowExchange implements ShadowStream, Dispatcher.DispatchHandler {
  readonly #body: Readable | null;
  #controller: Dispatcher.DispatchController | null = null;
  #timer: NodeJS.Timeout | null = null;
  #status = 0;
  #done = false;
  readonly #started = performance.now();

  constructor(
    private readonly request: ShadowRequest,
    private readonly host: Host,
    private readonly maxBuffered: number,
    private readonly onDone: () => void,
  ) {
    // No read() work: chunks are pushed as they arrive from the client; undici pulls them.
    this.#body = request.hasBody ? new Readable({ read() {} }) : null;
    this.#body?.on('error', () => undefined);
  }

  dispatch(): void {
    const { request, host } = this;
    request.stats.sent();
    request.stats.active.inc();
    request.cluster.stats.rqTotal.inc();
    request.cluster.stats.rqActive.inc();
    host.active++;
    host.counters.rqTotal++;
    if (request.timeoutMs > 0) {
      this.#timer = setTimeout(() => this.#abort(new ShadowAbort('timeout')), request.timeoutMs);
      this.#timer.unref();
    }
    host.pool.dispatch(
      {
        path: request.path,
        method: request.method,
        headers: request.headers as Record<string, string | string[]>,
        body: this.#body,
        // Shadows are never retried and never followed through redirects.
        idempotent: false,
        blocking: false,
      },
      this,
    );
  }

  // implements ShadowStream
  write(chunk: Buffer): void {
    const body = this.#body;
    if (this.#done || body === null) return;
    body.push(chunk);
    // readableLength is what undici has not taken yet: the shadow upstream is behind the client.
    if (body.readableLength > this.maxBuffered) this.#abort(new ShadowAbort('body_cap'));
  }

  end(): void {
    if (!this.#done) this.#body?.push(null);
  }

  abort(): void {
    this.#abort(new ShadowAbort('client_aborted'));
  }

  // implements Dispatcher.DispatchHandler
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#done) controller.abort(new ShadowAbort('client_aborted'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode >= 200) this.#status = statusCode;
  }

  onResponseData(): void {
    // Discarded: the client only ever sees the primary's response.
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#finish();
    this.request.stats.succeeded(this.#status);
    this.request.cluster.stats.response(this.#status);
    this.host.counters[this.#status >= 500 ? 'rqError' : 'rqSuccess']++;
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    this.#finish();
    this.#countFailure(err);
  }

  #abort(reason: ShadowAbort): void {
    if (this.#done) return;
    this.#finish();
    this.#countFailure(reason);
    this.#controller?.abort(reason);
    this.#body?.destroy(reason);
  }

  #countFailure(err: Error): void {
    const { stats, cluster } = this.request;
    this.host.counters.rqError++;
    if (err instanceof ShadowAbort) {
      if (err.reason === 'timeout') {
        stats.timedOut();
        cluster.stats.rqTimeout.inc();
        this.host.counters.rqTimeout++;
      } else if (err.reason === 'body_cap') {
        stats.dropped('body_cap');
      } else {
        stats.failed('client_aborted');
      }
      cluster.stats.rqReset.inc();
      return;
    }
    stats.failed(failReason(err));
  }

  #finish(): void {
    this.#done = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.host.active--;
    const { stats, cluster } = this.request;
    stats.active.dec();
    cluster.stats.rqActive.dec();
    stats.rqTime.observe(performance.now() - this.#started);
    this.onDone();
  }
}

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EADDRNOTAVAIL']);

/** Sorts an undici error into the reasons we count. */
export function failReason(err: Error): ShadowFailReason {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CONNECT_FAILURES.has(code)) return 'connect_failure';
  if (code.startsWith('HPE_') || code === 'UND_ERR_INFO') return 'protocol_error';
  return 'reset';
}
