import { OutlierStats } from './outlier-stats';
import type { Cell, HistogramCell, StatsRegistry } from './registry';
import { RetryStats } from './retry-stats';
import { ClusterConnectionStats, TcpStats } from './tcp-stats';

// Label-bound metric handles for the data path: created once per cluster or listener, after which
// every update is a plain method call with no label lookup.

type CounterChild = Cell;
type GaugeChild = Cell;
type HistogramChild = HistogramCell;

export class ClusterStats {
  readonly rqTotal: CounterChild;
  readonly rqCompleted: CounterChild;
  readonly rqTimeout: CounterChild;
  readonly rqReset: CounterChild;
  readonly cxConnectFail: CounterChild;
  readonly cxTotal: CounterChild;
  readonly cxHttp1Total: CounterChild;
  readonly cxHttp2Total: CounterChild;
  readonly sslHandshake: CounterChild;
  readonly sslConnectionError: CounterChild;
  readonly noneHealthy: CounterChild;
  readonly lbHealthyPanic: CounterChild;
  readonly pendingOverflow: CounterChild;
  readonly rqActive: GaugeChild;
  readonly members: GaugeChild;
  readonly rqTime: HistogramChild;
  readonly retry: RetryStats;
  readonly #byCode = new Map<number, CounterChild>();
  readonly #byClass: CounterChild[];
  #healthCheck: HealthCheckStats | null = null;
  #outlier: OutlierStats | null = null;
  #connections: ClusterConnectionStats | null = null;

  constructor(readonly name: string, private readonly registry: StatsRegistry) {
    const l = { envoy_cluster_name: name };
    this.rqTotal = registry.clusterRqTotal.labels(l);
    this.rqCompleted = registry.clusterRqCompleted.labels(l);
    this.rqTimeout = registry.clusterRqTimeout.labels(l);
    this.rqReset = registry.clusterRqReset.labels(l);
    this.cxConnectFail = registry.clusterCxConnectFail.labels(l);
    this.cxTotal = registry.clusterCxTotal.labels(l);
    this.cxHttp1Total = registry.clusterCxHttp1Total.labels(l);
    this.cxHttp2Total = registry.clusterCxHttp2Total.labels(l);
    this.sslHandshake = registry.clusterSslHandshake.labels(l);
    this.sslConnectionError = registry.clusterSslConnectionError.labels(l);
    this.noneHealthy = registry.clusterNoneHealthy.labels(l);
    this.lbHealthyPanic = registry.clusterLbHealthyPanic.labels(l);
    this.pendingOverflow = registry.clusterPendingOverflow.labels(l);
    this.rqActive = registry.clusterRqActive.labels(l);
    this.members = registry.clusterMembers.labels(l);
    this.rqTime = registry.clusterRqTime.labels(l);
    this.retry = new RetryStats(name, registry);
    this.#byClass = [1, 2, 3, 4, 5].map((c) => registry.clusterRqClass.labels({ ...l, envoy_response_code_class: String(c) }));
  }

  /**
   * `cluster.<name>.health_check.*`, bound on first use: like Envoy, only clusters with active
   * health checking print them.
   */
  get healthCheck(): HealthCheckStats {
    return (this.#healthCheck ??= new HealthCheckStats(this.name, this.registry));
  }

  /** `cluster.<name>.outlier_detection.*`, bound on first use: only clusters with outlier detection print them. */
  get outlierDetection(): OutlierStats {
    return (this.#outlier ??= new OutlierStats(this.name, this.registry));
  }

  /** `cluster.<name>.upstream_cx_*` of raw TCP connections (the TCP proxy), bound on first use. */
  get connections(): ClusterConnectionStats {
    return (this.#connections ??= new ClusterConnectionStats(this.name, this.registry));
  }

  /** Counts a response by its code and its class, as Envoy does. */
  response(status: number): void {
    let byCode = this.#byCode.get(status);
    if (!byCode) {
      byCode = this.registry.clusterRqCode.labels({ envoy_cluster_name: this.name, envoy_response_code: String(status) });
      this.#byCode.set(status, byCode);
    }
    byCode.inc();
    this.#byClass[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!.inc();
    this.rqCompleted.inc();
  }
}

/** Envoy's health checker stats for one cluster. */
export class HealthCheckStats {
  readonly attempt: CounterChild;
  readonly success: CounterChild;
  readonly failure: CounterChild;
  readonly networkFailure: CounterChild;
  /** Hosts currently passing active health checks. */
  readonly healthy: GaugeChild;

  constructor(cluster: string, registry: StatsRegistry) {
    const l = { envoy_cluster_name: cluster };
    this.attempt = registry.clusterHcAttempt.labels(l);
    this.success = registry.clusterHcSuccess.labels(l);
    this.failure = registry.clusterHcFailure.labels(l);
    this.networkFailure = registry.clusterHcNetworkFailure.labels(l);
    this.healthy = registry.clusterHcHealthy.labels(l);
  }
}

export class HttpStats {
  readonly rqTotal: CounterChild;
  readonly rqActive: GaugeChild;
  readonly cxTotal: CounterChild;
  readonly cxActive: GaugeChild;
  readonly cxHttp1Total: CounterChild;
  readonly cxHttp2Total: CounterChild;
  readonly cxSslTotal: CounterChild;
  readonly rqHttp1Total: CounterChild;
  readonly rqHttp2Total: CounterChild;
  readonly cxProtocolError: CounterChild;
  readonly rqTimeout: CounterChild;
  readonly rqHeaderTimeout: CounterChild;
  readonly rqIdleTimeout: CounterChild;
  readonly cxIdleTimeout: CounterChild;
  readonly cxMaxDurationReached: CounterChild;
  readonly cxMaxRequestsReached: CounterChild;
  readonly rqResponseBeforeRqComplete: CounterChild;
  readonly noRoute: CounterChild;
  readonly failedPathNormalization: CounterChild;
  readonly redirectedWithNormalizedPath: CounterChild;
  readonly nonRelativePath: CounterChild;
  readonly noCluster: CounterChild;
  readonly directResponse: CounterChild;
  readonly cxUpgradesTotal: CounterChild;
  readonly cxUpgradesActive: GaugeChild;
  readonly rqWsOnNonWsRoute: CounterChild;
  /** Allowed upgrades that never became a tunnel (ours; Envoy has no such counter). */
  readonly upgradesFailed: CounterChild;
  readonly rqTime: HistogramChild;
  readonly #byClass: CounterChild[];

  constructor(prefix: string, registry: StatsRegistry) {
    const l = { envoy_http_conn_manager_prefix: prefix };
    this.rqTotal = registry.httpRqTotal.labels(l);
    this.rqActive = registry.httpRqActive.labels(l);
    this.cxTotal = registry.httpCxTotal.labels(l);
    this.cxActive = registry.httpCxActive.labels(l);
    this.cxHttp1Total = registry.httpCxHttp1Total.labels(l);
    this.cxHttp2Total = registry.httpCxHttp2Total.labels(l);
    this.cxSslTotal = registry.httpCxSslTotal.labels(l);
    this.rqHttp1Total = registry.httpRqHttp1Total.labels(l);
    this.rqHttp2Total = registry.httpRqHttp2Total.labels(l);
    this.cxProtocolError = registry.httpCxProtocolError.labels(l);
    this.rqTimeout = registry.httpRqTimeout.labels(l);
    this.rqHeaderTimeout = registry.httpRqHeaderTimeout.labels(l);
    this.rqIdleTimeout = registry.httpRqIdleTimeout.labels(l);
    this.cxIdleTimeout = registry.httpCxIdleTimeout.labels(l);
    this.cxMaxDurationReached = registry.httpCxMaxDuration.labels(l);
    this.cxMaxRequestsReached = registry.httpCxMaxRequests.labels(l);
    this.rqResponseBeforeRqComplete = registry.httpRqResponseBeforeRqComplete.labels(l);
    this.noRoute = registry.httpNoRoute.labels(l);
    this.failedPathNormalization = registry.httpFailedPathNormalization.labels(l);
    this.redirectedWithNormalizedPath = registry.httpRedirectedWithNormalizedPath.labels(l);
    this.nonRelativePath = registry.httpNonRelativePath.labels(l);
    this.noCluster = registry.httpNoCluster.labels(l);
    this.directResponse = registry.httpDirectResponse.labels(l);
    this.cxUpgradesTotal = registry.httpCxUpgradesTotal.labels(l);
    this.cxUpgradesActive = registry.httpCxUpgradesActive.labels(l);
    this.rqWsOnNonWsRoute = registry.httpRqWsOnNonWsRoute.labels(l);
    this.upgradesFailed = registry.httpUpgradesFailed.labels(l);
    this.rqTime = registry.httpRqTime.labels(l);
    this.#byClass = [1, 2, 3, 4, 5].map((c) => registry.httpRqClass.labels({ ...l, envoy_response_code_class: String(c) }));
  }

  response(status: number): void {
    this.#byClass[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!.inc();
  }
}

/** Envoy's `listener.<address or stat_prefix>.*` counters for refused connections. */
export class ListenerStats {
  readonly cxOverflow: CounterChild;
  readonly globalCxOverflow: CounterChild;
  readonly noFilterChainMatch: CounterChild;
  readonly sslHandshake: CounterChild;
  readonly sslConnectionError: CounterChild;
  readonly sslNoCertificate: CounterChild;
  readonly sslFailVerifyError: CounterChild;
  readonly sslFailVerifySan: CounterChild;
  readonly sslFailVerifyNoCert: CounterChild;

  constructor(prefix: string, registry: StatsRegistry) {
    const l = { envoy_listener_address: prefix };
    this.cxOverflow = registry.listenerCxOverflow.labels(l);
    this.globalCxOverflow = registry.listenerGlobalCxOverflow.labels(l);
    this.noFilterChainMatch = registry.listenerNoFilterChainMatch.labels(l);
    this.sslHandshake = registry.listenerSslHandshake.labels(l);
    this.sslConnectionError = registry.listenerSslConnectionError.labels(l);
    this.sslNoCertificate = registry.listenerSslNoCertificate.labels(l);
    this.sslFailVerifyError = registry.listenerSslFailVerifyError.labels(l);
    this.sslFailVerifySan = registry.listenerSslFailVerifySan.labels(l);
    this.sslFailVerifyNoCert = registry.listenerSslFailVerifyNoCert.labels(l);
  }
}

export type ShadowSkipReason =
  | 'sampling'
  | 'missing_header'
  | 'cluster_not_allowed'
  | 'unknown_cluster'
  | 'no_healthy_host'
  | 'all_hosts_ejected'
  | 'method'
  | 'hook'
  | 'limited'
  | 'limit_error';
export type ShadowDropReason = 'inflight_cap' | 'body_cap' | 'body_too_large' | 'total_inflight_cap' | 'total_body_cap';
export type ShadowFailReason = 'connect_failure' | 'reset' | 'protocol_error' | 'client_aborted';

/** What the shadow writer counts, whether for a cluster alone or for a policy and its cluster. */
export interface ShadowCounters {
  sent(): void;
  succeeded(status: number): void;
  failed(reason: ShadowFailReason): void;
  timedOut(): void;
  dropped(reason: ShadowDropReason): void;
  skipped(reason: ShadowSkipReason): void;
  retried(): void;
  /** The shadow's response ran past what the exchange may read: its connection was closed. */
  responseTruncated(): void;
  /** The host the shadow goes to (`ip:port`), for whoever logs it; counters need not care. */
  picked?(host: string): void;
  readonly active: GaugeChild;
  readonly rqTime: HistogramChild;
}

/** Counts with a label set cached per outcome and reason. */
abstract class OutcomeCounter {
  readonly #children = new Map<string, CounterChild>();

  protected abstract child(outcome: string, reason: string): CounterChild;

  protected count(outcome: string, reason: string): void {
    const key = `${outcome}|${reason}`;
    let child = this.#children.get(key);
    if (!child) this.#children.set(key, (child = this.child(outcome, reason)));
    child.inc();
  }

  // The two outcomes of every shadow get direct handles; the rest go through the map.
  #sent: CounterChild | null = null;
  readonly #succeeded: Array<CounterChild | undefined> = [];

  sent(): void {
    (this.#sent ??= this.child('sent', '')).inc();
  }

  succeeded(status: number): void {
    const cls = Math.min(Math.max(Math.floor(status / 100), 1), 5);
    (this.#succeeded[cls] ??= this.child('succeeded', `${cls}xx`)).inc();
  }

  failed(reason: ShadowFailReason): void { this.count('failed', reason); }
  timedOut(): void { this.count('timed_out', ''); }
  dropped(reason: ShadowDropReason): void { this.count('dropped', reason); }
  skipped(reason: ShadowSkipReason): void { this.count('skipped', reason); }
  retried(): void { this.count('retried', ''); }
  responseTruncated(): void { this.count('response_truncated', ''); }
}

/** Per extended mirror policy: its decisions and outcomes, and its hooks' outcomes. */
export class PolicyStats extends OutcomeCounter {
  constructor(readonly policy: string, private readonly registry: StatsRegistry) {
    super();
  }

  protected child(outcome: string, reason: string): CounterChild {
    return this.registry.policyRq.labels({ policy: this.policy, outcome, reason });
  }

  /** A sync shadow the primary's response stopped waiting for. */
  syncTimedOut(): void { this.count('sync_timed_out', ''); }

  hook(hook: string, outcome: string): void {
    this.registry.policyHooks.labels({ policy: this.policy, hook, outcome }).inc();
  }

  /** One compared request's outcome (src/compare). */
  compared(outcome: string): void {
    this.registry.compareOutcomes.labels({ policy: this.policy, outcome }).inc();
  }

  /** How long one leg of a compared request took to answer in full. */
  compareTime(leg: 'primary' | 'candidate' | 'reference', ms: number): void {
    this.registry.compareTime.labels({ policy: this.policy, leg }).observe(ms);
  }
}

/** A policy's shadows to one cluster: every outcome counted for both. */
export class PolicyClusterStats implements ShadowCounters {
  constructor(readonly cluster: ShadowStats, readonly policy: PolicyStats) {}
  get active(): GaugeChild { return this.cluster.active; }
  get rqTime(): HistogramChild { return this.cluster.rqTime; }
  sent(): void { this.cluster.sent(); this.policy.sent(); }
  succeeded(status: number): void { this.cluster.succeeded(status); this.policy.succeeded(status); }
  failed(reason: ShadowFailReason): void { this.cluster.failed(reason); this.policy.failed(reason); }
  timedOut(): void { this.cluster.timedOut(); this.policy.timedOut(); }
  dropped(reason: ShadowDropReason): void { this.cluster.dropped(reason); this.policy.dropped(reason); }
  skipped(reason: ShadowSkipReason): void { this.cluster.skipped(reason); this.policy.skipped(reason); }
  retried(): void { this.cluster.retried(); this.policy.retried(); }
  responseTruncated(): void { this.cluster.responseTruncated(); this.policy.responseTruncated(); }
}

/** Per mirror cluster: every shadow decision and outcome, each with its reason. */
export class ShadowStats extends OutcomeCounter implements ShadowCounters {
  readonly active: GaugeChild;
  readonly rqTime: HistogramChild;

  constructor(readonly cluster: string, private readonly registry: StatsRegistry) {
    super();
    this.active = registry.shadowActive.labels({ envoy_cluster_name: cluster });
    this.rqTime = registry.shadowRqTime.labels({ envoy_cluster_name: cluster });
  }

  protected child(outcome: string, reason: string): CounterChild {
    return this.registry.shadowRq.labels({ envoy_cluster_name: this.cluster, outcome, reason });
  }
}

/** Hands out the bound handles, creating each once. */
export class StatsScopes {
  readonly #clusters = new Map<string, ClusterStats>();
  readonly #http = new Map<string, HttpStats>();
  readonly #shadows = new Map<string, ShadowStats>();
  readonly #policies = new Map<string, PolicyStats>();
  readonly #listeners = new Map<string, ListenerStats>();
  readonly #tcp = new Map<string, TcpStats>();

  constructor(readonly registry: StatsRegistry) {}

  cluster(name: string): ClusterStats {
    let s = this.#clusters.get(name);
    if (!s) this.#clusters.set(name, (s = new ClusterStats(name, this.registry)));
    return s;
  }

  http(prefix: string): HttpStats {
    let s = this.#http.get(prefix);
    if (!s) this.#http.set(prefix, (s = new HttpStats(prefix, this.registry)));
    return s;
  }

  listener(prefix: string): ListenerStats {
    let s = this.#listeners.get(prefix);
    if (!s) this.#listeners.set(prefix, (s = new ListenerStats(prefix, this.registry)));
    return s;
  }

  tcp(prefix: string): TcpStats {
    let s = this.#tcp.get(prefix);
    if (!s) this.#tcp.set(prefix, (s = new TcpStats(prefix, this.registry)));
    return s;
  }

  policy(name: string): PolicyStats {
    let s = this.#policies.get(name);
    if (!s) this.#policies.set(name, (s = new PolicyStats(name, this.registry)));
    return s;
  }

  shadow(cluster: string): ShadowStats {
    let s = this.#shadows.get(cluster);
    if (!s) this.#shadows.set(cluster, (s = new ShadowStats(cluster, this.registry)));
    return s;
  }
}
