import type * as prom from 'prom-client';
import type { Cell, StatsRegistry } from './registry';

// Label-bound metric handles for the data path: created once per cluster or listener, after which
// every update is a plain method call with no label lookup.

type CounterChild = Cell;
type GaugeChild = Cell;
type HistogramChild = prom.Histogram.Internal<string>;

export class ClusterStats {
  readonly rqTotal: CounterChild;
  readonly rqCompleted: CounterChild;
  readonly rqTimeout: CounterChild;
  readonly rqReset: CounterChild;
  readonly cxConnectFail: CounterChild;
  readonly cxTotal: CounterChild;
  readonly noneHealthy: CounterChild;
  readonly pendingOverflow: CounterChild;
  readonly rqActive: GaugeChild;
  readonly members: GaugeChild;
  readonly rqTime: HistogramChild;
  readonly #byCode = new Map<number, CounterChild>();
  readonly #byClass: CounterChild[];

  constructor(readonly name: string, private readonly registry: StatsRegistry) {
    const l = { envoy_cluster_name: name };
    this.rqTotal = registry.clusterRqTotal.labels(l);
    this.rqCompleted = registry.clusterRqCompleted.labels(l);
    this.rqTimeout = registry.clusterRqTimeout.labels(l);
    this.rqReset = registry.clusterRqReset.labels(l);
    this.cxConnectFail = registry.clusterCxConnectFail.labels(l);
    this.cxTotal = registry.clusterCxTotal.labels(l);
    this.noneHealthy = registry.clusterNoneHealthy.labels(l);
    this.pendingOverflow = registry.clusterPendingOverflow.labels(l);
    this.rqActive = registry.clusterRqActive.labels(l);
    this.members = registry.clusterMembers.labels(l);
    this.rqTime = registry.clusterRqTime.labels(l);
    this.#byClass = [1, 2, 3, 4, 5].map((c) => registry.clusterRqClass.labels({ ...l, envoy_response_code_class: String(c) }));
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

export class HttpStats {
  readonly rqTotal: CounterChild;
  readonly rqActive: GaugeChild;
  readonly cxTotal: CounterChild;
  readonly cxActive: GaugeChild;
  readonly cxProtocolError: CounterChild;
  readonly noRoute: CounterChild;
  readonly noCluster: CounterChild;
  readonly directResponse: CounterChild;
  readonly rqTime: HistogramChild;
  readonly #byClass: CounterChild[];

  constructor(prefix: string, registry: StatsRegistry) {
    const l = { envoy_http_conn_manager_prefix: prefix };
    this.rqTotal = registry.httpRqTotal.labels(l);
    this.rqActive = registry.httpRqActive.labels(l);
    this.cxTotal = registry.httpCxTotal.labels(l);
    this.cxActive = registry.httpCxActive.labels(l);
    this.cxProtocolError = registry.httpCxProtocolError.labels(l);
    this.noRoute = registry.httpNoRoute.labels(l);
    this.noCluster = registry.httpNoCluster.labels(l);
    this.directResponse = registry.httpDirectResponse.labels(l);
    this.rqTime = registry.httpRqTime.labels(l);
    this.#byClass = [1, 2, 3, 4, 5].map((c) => registry.httpRqClass.labels({ ...l, envoy_response_code_class: String(c) }));
  }

  response(status: number): void {
    this.#byClass[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!.inc();
  }
}

export type ShadowSkipReason = 'sampling' | 'missing_header' | 'unknown_cluster' | 'no_healthy_host';
export type ShadowDropReason = 'inflight_cap' | 'body_cap';
export type ShadowFailReason = 'connect_failure' | 'reset' | 'protocol_error' | 'client_aborted';

/** Per mirror cluster: every shadow decision and outcome, each with its reason. */
export class ShadowStats {
  readonly active: GaugeChild;
  readonly rqTime: HistogramChild;
  readonly #children = new Map<string, CounterChild>();

  constructor(readonly cluster: string, private readonly registry: StatsRegistry) {
    this.active = registry.shadowActive.labels({ envoy_cluster_name: cluster });
    this.rqTime = registry.shadowRqTime.labels({ envoy_cluster_name: cluster });
  }

  #count(outcome: string, reason: string): void {
    const key = `${outcome}|${reason}`;
    let child = this.#children.get(key);
    if (!child) {
      child = this.registry.shadowRq.labels({ envoy_cluster_name: this.cluster, outcome, reason });
      this.#children.set(key, child);
    }
    child.inc();
  }

  sent(): void { this.#count('sent', ''); }
  succeeded(status: number): void { this.#count('succeeded', `${Math.floor(status / 100)}xx`); }
  failed(reason: ShadowFailReason): void { this.#count('failed', reason); }
  timedOut(): void { this.#count('timed_out', ''); }
  dropped(reason: ShadowDropReason): void { this.#count('dropped', reason); }
  skipped(reason: ShadowSkipReason): void { this.#count('skipped', reason); }
}

/** Hands out the bound handles, creating each once. */
export class StatsScopes {
  readonly #clusters = new Map<string, ClusterStats>();
  readonly #http = new Map<string, HttpStats>();
  readonly #shadows = new Map<string, ShadowStats>();

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

  shadow(cluster: string): ShadowStats {
    let s = this.#shadows.get(cluster);
    if (!s) this.#shadows.set(cluster, (s = new ShadowStats(cluster, this.registry)));
    return s;
  }
}
