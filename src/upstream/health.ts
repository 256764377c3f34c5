import type { Client } from 'undici';
import type { HealthCheckConfig } from '../config/model';
import { type HeaderMap, applyHeadersToAdd, removeHeaders } from '../http/headers';
import type { HealthCheckStats } from '../stats/scopes';
import { type Host, formatAddressPort } from './host';

// Envoy's active HTTP health checking (HealthCheckerImplBase + HttpHealthCheckerImpl), per host:
//   - a host starts failing (FAILED_ACTIVE_HC) and its first check runs at once; the first
//     success ever makes it healthy straight away, later ones need healthy_threshold in a row;
//   - a response outside expected_statuses fails it at once; connection errors and timeouts
//     ("network" failures) need unhealthy_threshold in a row;
//   - the next check is `interval` (+ up to interval_jitter) after the previous result, or
//     no_traffic_interval while the cluster has never opened a connection for traffic.
// Checks go on their own connection (never the traffic pool) and close it after each response.
// The panic threshold is the cluster's (panic.ts). Not modelled: reuse_connection, the
// *_edge/unhealthy intervals.

/** How a check ended, in Envoy's terms. */
type CheckResult = 'success' | 'active_failure' | 'network_failure';

export interface HealthCheckerOptions {
  readonly clusterName: string;
  readonly config: HealthCheckConfig;
  readonly stats: HealthCheckStats;
  /** A host moved from passing to failing or back; the cluster recomputes its healthy set. */
  readonly onChange: () => void;
  /** Whether the cluster ever opened a connection for traffic (Envoy: upstream_cx_total used). */
  readonly hadTraffic: () => boolean;
  /** A check passed on a host that is not failing active checks (outlier detection may uneject it). */
  readonly onPassed?: (host: Host) => void;
  readonly random?: () => number;
  /** The endpoint's health_check_config: another port to check, a Host header of its own. */
  readonly checkTarget?: (host: Host) => { readonly port: number | null; readonly hostname: string };
}

/** Active health checking for one cluster's hosts. */
export class HealthChecker {
  readonly #sessions = new Map<Host, HostSession>();
  #stopped = false;

  constructor(private readonly options: HealthCheckerOptions) {}

  /** Makes the checked hosts equal to `hosts`: new ones start failing and are checked at once. */
  setHosts(hosts: readonly Host[]): void {
    if (this.#stopped) return;
    const keep = new Set(hosts);
    for (const [host, session] of this.#sessions) {
      if (!keep.has(host)) {
        session.stop();
        this.#sessions.delete(host);
      }
    }
    for (const host of hosts) {
      if (this.#sessions.has(host)) continue;
      const session = new HostSession(host, this.options, (changed) => this.#onResult(changed));
      this.#sessions.set(host, session);
      session.start();
    }
    this.#refreshHealthy();
  }

  /** True while `host` is failing active health checks (or has not passed one yet). */
  failed(host: Host): boolean {
    return this.#sessions.get(host)?.failed ?? false;
  }

  /** Resolves when every current host has had its first check (Envoy's cluster warming). */
  async firstRound(): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((s) => s.firstResult));
  }

  stop(): void {
    this.#stopped = true;
    for (const s of this.#sessions.values()) s.stop();
    this.#sessions.clear();
  }

  #onResult(changed: boolean): void {
    this.#refreshHealthy();
    if (changed) this.options.onChange();
  }

  #refreshHealthy(): void {
    let n = 0;
    for (const s of this.#sessions.values()) if (!s.failed) n++;
    this.options.stats.healthy.set(n);
  }
}

class HostSession {
  /** Envoy's FAILED_ACTIVE_HC: set until the first check passes. */
  failed = true;
  readonly firstResult: Promise<void>;
  #resolveFirst!: () => void;
  #firstCheck = true;
  #numHealthy = 0;
  #numUnhealthy = 0;
  #timer: NodeJS.Timeout | null = null;
  #inFlight: AbortController | null = null;
  #client: Client | null = null;
  #stopped = false;

  constructor(
    private readonly host: Host,
    private readonly options: HealthCheckerOptions,
    private readonly onResult: (changed: boolean) => void,
  ) {
    this.firstResult = new Promise((resolve) => (this.#resolveFirst = resolve));
  }

  start(): void {
    void this.#check();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#inFlight?.abort();
    void this.#client?.destroy().catch(() => undefined);
    this.#client = null;
    this.#resolveFirst();
  }

  async #check(): Promise<void> {
    this.#timer = null;
    const { config, stats } = this.options;
    stats.attempt.inc();
    const abort = new AbortController();
    this.#inFlight = abort;
    const timeout = setTimeout(() => abort.abort(), config.timeoutMs);
    timeout.unref();
    let result: CheckResult;
    try {
      const res = await this.#dispatcher().request({
        method: 'GET',
        path: config.http.path,
        headers: this.#headers() as Record<string, string | string[]>,
        signal: abort.signal,
        // One connection per check, closed after the response: never the traffic pool.
        reset: true,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      await res.body.dump({ limit: 64 * 1024, signal: abort.signal });
      result = expected(res.statusCode, config.http.expectedStatuses) ? 'success' : 'active_failure';
    } catch {
      result = 'network_failure';
    } finally {
      clearTimeout(timeout);
      this.#inFlight = null;
    }
    if (this.#stopped) return;
    const changed = result === 'success' ? this.#handleSuccess() : this.#handleFailure(result);
    this.#resolveFirst();
    if (result === 'success' && !this.failed) this.options.onPassed?.(this.host);
    this.onResult(changed);
    this.#schedule();
  }

  /** Envoy's handleSuccess; true when the host became healthy. */
  #handleSuccess(): boolean {
    const stats = this.options.stats;
    stats.success.inc();
    this.#numUnhealthy = 0;
    let changed = false;
    if (this.failed && (this.#firstCheck || ++this.#numHealthy >= this.options.config.healthyThreshold)) {
      this.failed = false;
      this.#numHealthy = 0;
      changed = true;
    }
    this.#firstCheck = false;
    return changed;
  }

  /** Envoy's setUnhealthy; true when the host became unhealthy. */
  #handleFailure(result: Exclude<CheckResult, 'success'>): boolean {
    const stats = this.options.stats;
    stats.failure.inc();
    if (result === 'network_failure') stats.networkFailure.inc();
    this.#numHealthy = 0;
    let changed = false;
    if (!this.failed && (result === 'active_failure' || ++this.#numUnhealthy >= this.options.config.unhealthyThreshold)) {
      this.failed = true;
      this.#numUnhealthy = 0;
      changed = true;
    }
    this.#firstCheck = false;
    return changed;
  }

  #schedule(): void {
    const { config, hadTraffic, random = Math.random } = this.options;
    // Envoy's no_traffic_healthy_interval applies to a passing host, no_traffic_interval to the rest.
    let ms = hadTraffic() ? config.intervalMs : this.failed ? config.noTrafficIntervalMs : config.noTrafficHealthyIntervalMs;
    if (config.intervalJitterMs > 0) ms += Math.floor(random() * config.intervalJitterMs);
    this.#timer = setTimeout(() => void this.#check(), ms);
    this.#timer.unref();
  }

  #dispatcher(): Client {
    if (this.#client === null) {
      // Over the endpoint's own transport socket, as Envoy's checks are.
      const tls = this.host.tls;
      const port = this.options.checkTarget?.(this.host).port ?? null;
      const origin = port === null ? this.host.addressPort : formatAddressPort(this.host.address, port);
      // undici is loaded by the first HTTP health check, not by every proxy.
      const { Client: UndiciClient } = require('undici') as typeof import('undici');
      const { tlsConnector } = require('./undici-pool') as typeof import('./undici-pool');
      this.#client = new UndiciClient(`${tls ? 'https' : 'http'}://${origin}`, {
        connect: tls ? tlsConnector(tls, this.options.config.timeoutMs) : { timeout: this.options.config.timeoutMs },
        pipelining: 1,
      });
      this.#client.on('connectionError', () => undefined);
    }
    return this.#client;
  }

  #headers(): HeaderMap {
    const http = this.options.config.http;
    const own = this.options.checkTarget?.(this.host).hostname ?? '';
    const headers: HeaderMap = { host: own || http.host || this.options.clusterName, 'user-agent': 'Envoy/HC' };
    applyHeadersToAdd(headers, http.requestHeadersToAdd, (v) => v);
    removeHeaders(headers, http.requestHeadersToRemove);
    return headers;
  }
}

function expected(status: number, ranges: ReadonlyArray<readonly [number, number]>): boolean {
  for (const [start, end] of ranges) if (status >= start && status < end) return true;
  return false;
}
