import type { Cell, StatsRegistry } from './registry';

/** Envoy's retry counters of one cluster (`cluster.<name>.upstream_rq_retry*` and friends). */
export class RetryStats {
  readonly retry: Cell;
  readonly success: Cell;
  readonly overflow: Cell;
  readonly limitExceeded: Cell;
  readonly backoffExponential: Cell;
  readonly perTryTimeout: Cell;
  readonly perTryIdleTimeout: Cell;
  /** Retries given up because the request body passed per_request_buffer_limit_bytes. */
  readonly abandoned: Cell;
  /** circuit_breakers.default.rq_retry_open: 1 while max_retries retries are under way. */
  readonly open: Cell;
  readonly #byCode = new Map<number, Cell>();
  readonly #byClass: Array<Cell | undefined> = [];

  constructor(private readonly cluster: string, private readonly registry: StatsRegistry) {
    const l = { envoy_cluster_name: cluster };
    this.retry = registry.clusterRqRetry.labels(l);
    this.success = registry.clusterRqRetrySuccess.labels(l);
    this.overflow = registry.clusterRqRetryOverflow.labels(l);
    this.limitExceeded = registry.clusterRqRetryLimitExceeded.labels(l);
    this.backoffExponential = registry.clusterRqRetryBackoffExponential.labels(l);
    this.perTryTimeout = registry.clusterRqPerTryTimeout.labels(l);
    this.perTryIdleTimeout = registry.clusterRqPerTryIdleTimeout.labels(l);
    this.abandoned = registry.clusterRetryOrShadowAbandoned.labels(l);
    this.open = registry.clusterRetryOpen.labels(l);
  }

  /** A response retried rather than sent on: `cluster.<name>.retry.upstream_rq_<code>` and `_<class>xx`, bound on first use as Envoy's are. */
  retriedResponse(status: number): void {
    let byCode = this.#byCode.get(status);
    if (!byCode) {
      byCode = this.registry.clusterRetryRqCode.labels({ envoy_cluster_name: this.cluster, envoy_response_code: String(status) });
      this.#byCode.set(status, byCode);
    }
    byCode.inc();
    const cls = Math.min(Math.max(Math.floor(status / 100), 1), 5);
    (this.#byClass[cls] ??= this.registry.clusterRetryRqClass.labels({ envoy_cluster_name: this.cluster, envoy_response_code_class: String(cls) })).inc();
  }
}
