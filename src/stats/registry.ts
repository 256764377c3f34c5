import * as prom from 'prom-client';

// The only importer of prom-client. Metric names follow Envoy's Prometheus export
// (`envoy_cluster_upstream_rq_total{envoy_cluster_name="…"}`); ours start with `sidemirror_`.

export type LabelValues = Partial<Record<string, string | number>>;

/** How one metric prints on /stats: Envoy's dotted name, built from the labels. */
export type TextName = (labels: LabelValues) => string;

const cluster = (suffix: string): TextName => (l) => `cluster.${l.envoy_cluster_name}.${suffix}`;
const http = (suffix: string): TextName => (l) => `http.${l.envoy_http_conn_manager_prefix}.${suffix}`;
const listener = (suffix: string): TextName => (l) => `listener.${l.envoy_listener_address}.${suffix}`;
const tcp = (suffix: string): TextName => (l) => `tcp.${l.envoy_tcp_prefix}.${suffix}`;

/** Where Envoy prints each subscription's update counters. */
const XDS_TEXT_PREFIX: Record<string, string> = { cds: 'cluster_manager.cds', lds: 'listener_manager.lds', rds: 'rds', eds: 'eds' };

const MS_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000];

/** Envoy dotted name of each metric, by Prometheus name; the same for every registry. */
const TEXT_NAMES = new Map<string, TextName>();

/** The ways Envoy's outlier detector ejects a host (its OutlierEjectionType, as stat names spell it). */
export const OUTLIER_EJECTION_TYPES = [
  'consecutive_5xx', 'consecutive_gateway_failure', 'consecutive_local_origin_failure',
  'success_rate', 'local_origin_success_rate', 'failure_percentage', 'local_origin_failure_percentage',
] as const;
export type OutlierEjectionType = (typeof OUTLIER_EJECTION_TYPES)[number];

/** Envoy's cluster.<name>.outlier_detection.* counters (ejections_total and the two undetailed ones are Envoy's deprecated ones). */
const OUTLIER_COUNTERS = [
  'ejections_enforced_total', 'ejections_overflow', 'ejections_total', 'ejections_consecutive_5xx', 'ejections_success_rate',
  ...OUTLIER_EJECTION_TYPES.map((t) => `ejections_detected_${t}` as const),
  ...OUTLIER_EJECTION_TYPES.map((t) => `ejections_enforced_${t}` as const),
] as const;
export type OutlierCounter = (typeof OUTLIER_COUNTERS)[number];

export type MetricsJson = Awaited<ReturnType<prom.Registry['getMetricsAsJSON']>>;

/**
 * Envoy's plain /stats from prom-client's JSON: `name: value` lines, sorted; histograms as count
 * and sum. `filter`, when given, picks the stats by their whole name.
 */
export function renderText(metrics: MetricsJson, filter?: (name: string) => boolean): string {
  const lines: string[] = [];
  const add = (name: string, value: number): void => {
    if (!filter || filter(name)) lines.push(`${name}: ${value}`);
  };
  for (const metric of metrics) {
    const toText = TEXT_NAMES.get(metric.name);
    if (!toText) continue;
    for (const v of metric.values as Array<{ value: number; labels: LabelValues; metricName?: string }>) {
      if (String(metric.type) === 'histogram') {
        if (v.metricName?.endsWith('_count')) add(`${toText(v.labels)}.count`, v.value);
        else if (v.metricName?.endsWith('_sum')) add(`${toText(v.labels)}.sum`, v.value);
      } else {
        add(toText(v.labels), v.value);
      }
    }
  }
  return lines.sort().join('\n') + '\n';
}

/** /stats?format=json from the text form. */
export function textToJson(text: string): { stats: Array<{ name: string; value: number }> } {
  return {
    stats: text.trim().split('\n').filter(Boolean).map((line) => {
      const i = line.lastIndexOf(': ');
      return { name: line.slice(0, i), value: Number(line.slice(i + 2)) };
    }),
  };
}

/**
 * A counter or gauge value the data path updates with a plain add: no label lookup, no
 * allocation. prom-client reads the cells only when something scrapes (its collect() hook).
 */
export class Cell {
  v = 0;
  inc(n = 1): void {
    this.v += n;
  }
  dec(n = 1): void {
    this.v -= n;
  }
  set(n: number): void {
    this.v = n;
  }
}

/** The cells of one metric, one per label set, exported through a prom-client metric. */
export class CellFamily {
  readonly #cells = new Map<string, { labels: Record<string, string>; cell: Cell }>();

  constructor(private readonly labelNames: readonly string[]) {}

  /** The cell for a label set; call once and keep it (the lookup is what the cell saves). */
  labels(labels: LabelValues): Cell {
    const key = this.labelNames.map((n) => String(labels[n] ?? '')).join('\u0001');
    let entry = this.#cells.get(key);
    if (!entry) {
      const clean: Record<string, string> = {};
      for (const n of this.labelNames) clean[n] = String(labels[n] ?? '');
      entry = { labels: clean, cell: new Cell() };
      this.#cells.set(key, entry);
    }
    return entry.cell;
  }

  /** For metrics without labels. */
  set(n: number): void {
    this.labels({}).set(n);
  }

  entries(): IterableIterator<{ labels: Record<string, string>; cell: Cell }> {
    return this.#cells.values();
  }

  zero(): void {
    for (const e of this.#cells.values()) e.cell.v = 0;
  }
}

/** A histogram's buckets for one label set, updated with no lookup and no allocation. */
export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/**
 * A histogram exported to prom-client as a metric of its own (prom-client's Histogram hashes
 * the label set on every observe; this does it once per label set).
 */
class HistogramFamily {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #cells = new Map<string, { labels: Record<string, string>; cell: HistogramCell }>();

  constructor(readonly name: string, readonly help: string, private readonly labelNames: readonly string[], private readonly bounds: readonly number[]) {}

  labels(labels: LabelValues): HistogramCell {
    const key = this.labelNames.map((n) => String(labels[n] ?? '')).join('\u0001');
    let entry = this.#cells.get(key);
    if (!entry) {
      const clean: Record<string, string> = {};
      for (const n of this.labelNames) clean[n] = String(labels[n] ?? '');
      entry = { labels: clean, cell: new HistogramCell(this.bounds) };
      this.#cells.set(key, entry);
    }
    return entry.cell;
  }

  /** prom-client's metric contract: the values as its Histogram would give them. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> }> {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const { labels, cell } of this.#cells.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += cell.counts[i]!;
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...labels, le: '+Inf' }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const e of this.#cells.values()) e.cell.reset();
  }
}

export class StatsRegistry {
  readonly registry = new prom.Registry();
  readonly #counters: CellFamily[] = [];

  readonly clusterRqTotal = this.#counter('envoy_cluster_upstream_rq_total', 'Upstream requests', ['envoy_cluster_name'], cluster('upstream_rq_total'));
  readonly clusterRqCompleted = this.#counter('envoy_cluster_upstream_rq_completed', 'Upstream requests completed', ['envoy_cluster_name'], cluster('upstream_rq_completed'));
  readonly clusterRqCode = this.#counter('envoy_cluster_upstream_rq', 'Upstream responses by code', ['envoy_response_code', 'envoy_cluster_name'], (l) => `cluster.${l.envoy_cluster_name}.upstream_rq_${l.envoy_response_code}`);
  readonly clusterRqClass = this.#counter('envoy_cluster_upstream_rq_xx', 'Upstream responses by class', ['envoy_response_code_class', 'envoy_cluster_name'], (l) => `cluster.${l.envoy_cluster_name}.upstream_rq_${l.envoy_response_code_class}xx`);
  readonly clusterRqTimeout = this.#counter('envoy_cluster_upstream_rq_timeout', 'Upstream requests that timed out', ['envoy_cluster_name'], cluster('upstream_rq_timeout'));
  readonly clusterRqReset = this.#counter('envoy_cluster_upstream_rq_tx_reset', 'Upstream requests reset', ['envoy_cluster_name'], cluster('upstream_rq_tx_reset'));
  readonly clusterCxConnectFail = this.#counter('envoy_cluster_upstream_cx_connect_fail', 'Upstream connection failures', ['envoy_cluster_name'], cluster('upstream_cx_connect_fail'));
  readonly clusterCxTotal = this.#counter('envoy_cluster_upstream_cx_total', 'Upstream connections opened', ['envoy_cluster_name'], cluster('upstream_cx_total'));
  readonly clusterCxHttp1Total = this.#counter('envoy_cluster_upstream_cx_http1_total', 'Upstream HTTP/1.1 connections opened', ['envoy_cluster_name'], cluster('upstream_cx_http1_total'));
  readonly clusterCxHttp2Total = this.#counter('envoy_cluster_upstream_cx_http2_total', 'Upstream HTTP/2 connections opened', ['envoy_cluster_name'], cluster('upstream_cx_http2_total'));
  readonly clusterSslHandshake = this.#counter('envoy_cluster_ssl_handshake', 'Upstream TLS handshakes', ['envoy_cluster_name'], cluster('ssl.handshake'));
  readonly clusterSslConnectionError = this.#counter('envoy_cluster_ssl_connection_error', 'Upstream TLS handshakes that failed', ['envoy_cluster_name'], cluster('ssl.connection_error'));
  readonly clusterNoneHealthy = this.#counter('envoy_cluster_upstream_cx_none_healthy', 'Requests with no host to send to', ['envoy_cluster_name'], cluster('upstream_cx_none_healthy'));
  readonly clusterPendingOverflow = this.#counter('envoy_cluster_upstream_rq_pending_overflow', 'Requests refused by the circuit breaker', ['envoy_cluster_name'], cluster('upstream_rq_pending_overflow'));
  readonly clusterRqActive = this.#gauge('envoy_cluster_upstream_rq_active', 'Upstream requests in flight', ['envoy_cluster_name'], cluster('upstream_rq_active'));
  readonly clusterMembers = this.#gauge('envoy_cluster_membership_total', 'Hosts in the cluster', ['envoy_cluster_name'], cluster('membership_total'));
  readonly clusterRqTime = this.#histogram('envoy_cluster_upstream_rq_time', 'Upstream request time (ms)', ['envoy_cluster_name'], cluster('upstream_rq_time'));
  readonly clusterHcAttempt = this.#counter('envoy_cluster_health_check_attempt', 'Active health checks started', ['envoy_cluster_name'], cluster('health_check.attempt'));
  readonly clusterHcSuccess = this.#counter('envoy_cluster_health_check_success', 'Active health checks passed', ['envoy_cluster_name'], cluster('health_check.success'));
  readonly clusterHcFailure = this.#counter('envoy_cluster_health_check_failure', 'Active health checks failed (any reason)', ['envoy_cluster_name'], cluster('health_check.failure'));
  readonly clusterHcNetworkFailure = this.#counter('envoy_cluster_health_check_network_failure', 'Active health checks failed by connection error or timeout', ['envoy_cluster_name'], cluster('health_check.network_failure'));
  readonly clusterHcHealthy = this.#gauge('envoy_cluster_health_check_healthy', 'Hosts passing active health checks', ['envoy_cluster_name'], cluster('health_check.healthy'));
  readonly clusterOutlier = Object.fromEntries(OUTLIER_COUNTERS.map((s) => [s, this.#counter(`envoy_cluster_outlier_detection_${s}`,
    `Outlier detection: ${s.replace(/_/g, ' ')}`, ['envoy_cluster_name'], cluster(`outlier_detection.${s}`))])) as Record<OutlierCounter, CellFamily>;
  readonly clusterOutlierActive = this.#gauge('envoy_cluster_outlier_detection_ejections_active', 'Hosts ejected by outlier detection now', ['envoy_cluster_name'],
    cluster('outlier_detection.ejections_active'));
  readonly clusterLbHealthyPanic = this.#counter('envoy_cluster_lb_healthy_panic', 'Hosts chosen from all hosts because too few were healthy (panic mode)', ['envoy_cluster_name'],
    cluster('lb_healthy_panic'));

  // Retries (src/stats/retry-stats.ts binds them per cluster).
  readonly clusterRqRetry = this.#counter('envoy_cluster_upstream_rq_retry', 'Request retries', ['envoy_cluster_name'], cluster('upstream_rq_retry'));
  readonly clusterRqRetrySuccess = this.#counter('envoy_cluster_upstream_rq_retry_success', 'Request retry successes', ['envoy_cluster_name'], cluster('upstream_rq_retry_success'));
  readonly clusterRqRetryOverflow = this.#counter('envoy_cluster_upstream_rq_retry_overflow', 'Requests not retried because of the max_retries circuit breaker',
    ['envoy_cluster_name'], cluster('upstream_rq_retry_overflow'));
  readonly clusterRqRetryLimitExceeded = this.#counter('envoy_cluster_upstream_rq_retry_limit_exceeded', 'Requests not retried because their retries were used up',
    ['envoy_cluster_name'], cluster('upstream_rq_retry_limit_exceeded'));
  readonly clusterRqRetryBackoffExponential = this.#counter('envoy_cluster_upstream_rq_retry_backoff_exponential', 'Retries that waited the exponential back-off',
    ['envoy_cluster_name'], cluster('upstream_rq_retry_backoff_exponential'));
  readonly clusterRqPerTryTimeout = this.#counter('envoy_cluster_upstream_rq_per_try_timeout', 'Attempts cut by per_try_timeout', ['envoy_cluster_name'], cluster('upstream_rq_per_try_timeout'));
  readonly clusterRqPerTryIdleTimeout = this.#counter('envoy_cluster_upstream_rq_per_try_idle_timeout', 'Attempts cut by per_try_idle_timeout',
    ['envoy_cluster_name'], cluster('upstream_rq_per_try_idle_timeout'));
  readonly clusterRetryOrShadowAbandoned = this.#counter('envoy_cluster_retry_or_shadow_abandoned', 'Requests whose retries were given up because the body passed the buffer limit',
    ['envoy_cluster_name'], cluster('retry_or_shadow_abandoned'));
  readonly clusterRetryRqCode = this.#counter('envoy_cluster_retry_upstream_rq', 'Retried-away upstream responses by code', ['envoy_response_code', 'envoy_cluster_name'],
    (l) => `cluster.${l.envoy_cluster_name}.retry.upstream_rq_${l.envoy_response_code}`);
  readonly clusterRetryRqClass = this.#counter('envoy_cluster_retry_upstream_rq_xx', 'Retried-away upstream responses by class', ['envoy_response_code_class', 'envoy_cluster_name'],
    (l) => `cluster.${l.envoy_cluster_name}.retry.upstream_rq_${l.envoy_response_code_class}xx`);
  readonly clusterRetryOpen = this.#gauge('envoy_cluster_circuit_breakers_default_rq_retry_open', 'Whether the max_retries circuit breaker is full (1) or not (0)',
    ['envoy_cluster_name'], cluster('circuit_breakers.default.rq_retry_open'));

  readonly httpRqTotal = this.#counter('envoy_http_downstream_rq_total', 'Downstream requests', ['envoy_http_conn_manager_prefix'], http('downstream_rq_total'));
  readonly httpRqClass = this.#counter('envoy_http_downstream_rq_xx', 'Downstream responses by class', ['envoy_response_code_class', 'envoy_http_conn_manager_prefix'], (l) => `http.${l.envoy_http_conn_manager_prefix}.downstream_rq_${l.envoy_response_code_class}xx`);
  readonly httpRqActive = this.#gauge('envoy_http_downstream_rq_active', 'Downstream requests in flight', ['envoy_http_conn_manager_prefix'], http('downstream_rq_active'));
  readonly httpCxTotal = this.#counter('envoy_http_downstream_cx_total', 'Downstream connections', ['envoy_http_conn_manager_prefix'], http('downstream_cx_total'));
  readonly httpCxHttp1Total = this.#counter('envoy_http_downstream_cx_http1_total', 'Downstream HTTP/1.1 connections', ['envoy_http_conn_manager_prefix'], http('downstream_cx_http1_total'));
  readonly httpCxHttp2Total = this.#counter('envoy_http_downstream_cx_http2_total', 'Downstream HTTP/2 connections', ['envoy_http_conn_manager_prefix'], http('downstream_cx_http2_total'));
  readonly httpCxSslTotal = this.#counter('envoy_http_downstream_cx_ssl_total', 'Downstream TLS connections', ['envoy_http_conn_manager_prefix'], http('downstream_cx_ssl_total'));
  readonly httpRqHttp1Total = this.#counter('envoy_http_downstream_rq_http1_total', 'Downstream HTTP/1.1 requests', ['envoy_http_conn_manager_prefix'], http('downstream_rq_http1_total'));
  readonly httpRqHttp2Total = this.#counter('envoy_http_downstream_rq_http2_total', 'Downstream HTTP/2 requests', ['envoy_http_conn_manager_prefix'], http('downstream_rq_http2_total'));
  readonly httpCxActive = this.#gauge('envoy_http_downstream_cx_active', 'Downstream connections open', ['envoy_http_conn_manager_prefix'], http('downstream_cx_active'));
  readonly httpRqTimeout = this.#counter('envoy_http_downstream_rq_timeout', 'Downstream requests cut by request_timeout', ['envoy_http_conn_manager_prefix'], http('downstream_rq_timeout'));
  readonly httpRqResponseBeforeRqComplete = this.#counter('envoy_http_downstream_rq_response_before_rq_complete', 'Responses started before the request was complete',
    ['envoy_http_conn_manager_prefix'], http('downstream_rq_response_before_rq_complete'));
  readonly httpCxProtocolError = this.#counter('envoy_http_downstream_cx_protocol_error', 'Malformed downstream requests', ['envoy_http_conn_manager_prefix'], http('downstream_cx_protocol_error'));
  readonly httpFailedPathNormalization = this.#counter('envoy_http_downstream_rq_failed_path_normalization', 'Requests refused by path normalization', ['envoy_http_conn_manager_prefix'], http('downstream_rq_failed_path_normalization'));
  readonly httpRedirectedWithNormalizedPath = this.#counter('envoy_http_downstream_rq_redirected_with_normalized_path', 'Requests redirected to their unescaped path', ['envoy_http_conn_manager_prefix'], http('downstream_rq_redirected_with_normalized_path'));
  readonly httpNonRelativePath = this.#counter('envoy_http_downstream_rq_non_relative_path', 'Requests whose path is not relative', ['envoy_http_conn_manager_prefix'], http('downstream_rq_non_relative_path'));
  readonly httpNoRoute = this.#counter('envoy_http_no_route', 'Requests with no route', ['envoy_http_conn_manager_prefix'], http('no_route'));
  readonly httpNoCluster = this.#counter('envoy_http_no_cluster', 'Requests whose cluster does not exist', ['envoy_http_conn_manager_prefix'], http('no_cluster'));
  readonly httpDirectResponse = this.#counter('envoy_http_rq_direct_response', 'Direct responses', ['envoy_http_conn_manager_prefix'], http('rq_direct_response'));
  readonly httpRqHeaderTimeout = this.#counter('envoy_http_downstream_rq_header_timeout', 'Downstream requests cut by request_headers_timeout', ['envoy_http_conn_manager_prefix'], http('downstream_rq_header_timeout'));
  readonly httpRqIdleTimeout = this.#counter('envoy_http_downstream_rq_idle_timeout', 'Downstream streams reset by stream_idle_timeout', ['envoy_http_conn_manager_prefix'], http('downstream_rq_idle_timeout'));
  readonly httpCxIdleTimeout = this.#counter('envoy_http_downstream_cx_idle_timeout', 'Downstream connections closed by idle_timeout', ['envoy_http_conn_manager_prefix'], http('downstream_cx_idle_timeout'));
  readonly httpCxMaxDuration = this.#counter('envoy_http_downstream_cx_max_duration_reached', 'Downstream connections closed by max_connection_duration', ['envoy_http_conn_manager_prefix'], http('downstream_cx_max_duration_reached'));
  readonly httpCxMaxRequests = this.#counter('envoy_http_downstream_cx_max_requests_reached', 'Downstream connections closed by max_requests_per_connection', ['envoy_http_conn_manager_prefix'], http('downstream_cx_max_requests_reached'));
  readonly listenerNoFilterChainMatch = this.#counter('envoy_listener_no_filter_chain_match', 'Connections no filter chain matched', ['envoy_listener_address'], listener('no_filter_chain_match'));
  readonly listenerSslHandshake = this.#counter('envoy_listener_ssl_handshake', 'Downstream TLS handshakes', ['envoy_listener_address'], listener('ssl.handshake'));
  readonly listenerSslConnectionError = this.#counter('envoy_listener_ssl_connection_error', 'Downstream TLS handshakes that failed', ['envoy_listener_address'], listener('ssl.connection_error'));
  readonly listenerSslNoCertificate = this.#counter('envoy_listener_ssl_no_certificate', 'Downstream TLS connections without a client certificate', ['envoy_listener_address'], listener('ssl.no_certificate'));
  readonly listenerSslFailVerifyError = this.#counter('envoy_listener_ssl_fail_verify_error', 'Client certificates that failed CA verification', ['envoy_listener_address'], listener('ssl.fail_verify_error'));
  readonly listenerSslFailVerifyNoCert = this.#counter('envoy_listener_ssl_fail_verify_no_cert', 'Clients without the required certificate', ['envoy_listener_address'], listener('ssl.fail_verify_no_cert'));
  readonly listenerSslFailVerifySan = this.#counter('envoy_listener_ssl_fail_verify_san', 'Client certificates that failed SAN verification', ['envoy_listener_address'], listener('ssl.fail_verify_san'));
  readonly listenerCxOverflow = this.#counter('envoy_listener_downstream_cx_overflow', 'Connections refused by the listener connection limit', ['envoy_listener_address'], listener('downstream_cx_overflow'));
  readonly listenerGlobalCxOverflow = this.#counter('envoy_listener_downstream_global_cx_overflow', 'Connections refused by the global downstream connection limit', ['envoy_listener_address'], listener('downstream_global_cx_overflow'));
  readonly httpCxUpgradesTotal = this.#counter('envoy_http_downstream_cx_upgrades_total', 'Upgrades (WebSocket) allowed by upgrade_configs', ['envoy_http_conn_manager_prefix'], http('downstream_cx_upgrades_total'));
  readonly httpCxUpgradesActive = this.#gauge('envoy_http_downstream_cx_upgrades_active', 'Upgraded streams open', ['envoy_http_conn_manager_prefix'], http('downstream_cx_upgrades_active'));
  readonly httpRqWsOnNonWsRoute = this.#counter('envoy_http_downstream_rq_ws_on_non_ws_route', 'Upgrade requests refused by upgrade_configs (403)', ['envoy_http_conn_manager_prefix'], http('downstream_rq_ws_on_non_ws_route'));
  readonly httpUpgradesFailed = this.#counter('sidemirror_http_upgrades_failed_total', 'Allowed upgrades that never became a tunnel (refused upstream, upstream failure, local reply)', ['envoy_http_conn_manager_prefix'], http('upgrades_failed'));
  readonly httpRqTime = this.#histogram('envoy_http_downstream_rq_time', 'Downstream request time (ms)', ['envoy_http_conn_manager_prefix'], http('downstream_rq_time'));

  // The TCP proxy's `tcp.<stat_prefix>.*` and the connection-level cluster stats it keeps.
  readonly tcpCxTotal = this.#counter('envoy_tcp_downstream_cx_total', 'Connections handled by the TCP proxy', ['envoy_tcp_prefix'], tcp('downstream_cx_total'));
  readonly tcpCxNoRoute = this.#counter('envoy_tcp_downstream_cx_no_route', 'Connections whose cluster does not exist', ['envoy_tcp_prefix'], tcp('downstream_cx_no_route'));
  readonly tcpCxRxBytes = this.#counter('envoy_tcp_downstream_cx_rx_bytes_total', 'Bytes read from downstream connections', ['envoy_tcp_prefix'], tcp('downstream_cx_rx_bytes_total'));
  readonly tcpCxTxBytes = this.#counter('envoy_tcp_downstream_cx_tx_bytes_total', 'Bytes written to downstream connections', ['envoy_tcp_prefix'], tcp('downstream_cx_tx_bytes_total'));
  readonly tcpPausedReading = this.#counter('envoy_tcp_downstream_flow_control_paused_reading_total', 'Times reading from downstream paused for a full upstream', ['envoy_tcp_prefix'],
    tcp('downstream_flow_control_paused_reading_total'));
  readonly tcpResumedReading = this.#counter('envoy_tcp_downstream_flow_control_resumed_reading_total', 'Times reading from downstream resumed', ['envoy_tcp_prefix'],
    tcp('downstream_flow_control_resumed_reading_total'));
  readonly tcpIdleTimeout = this.#counter('envoy_tcp_idle_timeout', 'Connections closed by idle_timeout', ['envoy_tcp_prefix'], tcp('idle_timeout'));
  readonly tcpMaxDuration = this.#counter('envoy_tcp_max_downstream_connection_duration', 'Connections closed by max_downstream_connection_duration', ['envoy_tcp_prefix'],
    tcp('max_downstream_connection_duration'));
  readonly tcpUpstreamFlushTotal = this.#counter('envoy_tcp_upstream_flush_total', 'Upstream connections that kept flushing after the downstream closed', ['envoy_tcp_prefix'], tcp('upstream_flush_total'));
  readonly tcpUpstreamFlushActive = this.#gauge('envoy_tcp_upstream_flush_active', 'Upstream connections flushing after the downstream closed', ['envoy_tcp_prefix'], tcp('upstream_flush_active'));
  readonly clusterCxActive = this.#gauge('envoy_cluster_upstream_cx_active', 'Upstream TCP proxy connections open', ['envoy_cluster_name'], cluster('upstream_cx_active'));
  readonly clusterCxConnectTimeout = this.#counter('envoy_cluster_upstream_cx_connect_timeout', 'Upstream connections that timed out connecting', ['envoy_cluster_name'], cluster('upstream_cx_connect_timeout'));
  readonly clusterCxOverflow = this.#counter('envoy_cluster_upstream_cx_overflow', 'Connections refused by the max_connections circuit breaker', ['envoy_cluster_name'], cluster('upstream_cx_overflow'));
  readonly clusterCxAttemptsExceeded = this.#counter('envoy_cluster_upstream_cx_connect_attempts_exceeded', 'Connections closed after max_connect_attempts failed', ['envoy_cluster_name'],
    cluster('upstream_cx_connect_attempts_exceeded'));
  readonly clusterCxRxBytes = this.#counter('envoy_cluster_upstream_cx_rx_bytes_total', 'Bytes read from upstream TCP proxy connections', ['envoy_cluster_name'], cluster('upstream_cx_rx_bytes_total'));
  readonly clusterCxTxBytes = this.#counter('envoy_cluster_upstream_cx_tx_bytes_total', 'Bytes written to upstream TCP proxy connections', ['envoy_cluster_name'], cluster('upstream_cx_tx_bytes_total'));
  readonly clusterPausedReading = this.#counter('envoy_cluster_upstream_flow_control_paused_reading_total', 'Times reading from upstream paused for a full downstream', ['envoy_cluster_name'],
    cluster('upstream_flow_control_paused_reading_total'));
  readonly clusterResumedReading = this.#counter('envoy_cluster_upstream_flow_control_resumed_reading_total', 'Times reading from upstream resumed', ['envoy_cluster_name'],
    cluster('upstream_flow_control_resumed_reading_total'));

  readonly shadowRq = this.#counter('sidemirror_shadow_rq_total', 'Shadow requests by outcome and reason', ['envoy_cluster_name', 'outcome', 'reason'],
    (l) => `cluster.${l.envoy_cluster_name}.shadow.${l.outcome}${l.reason ? '.' + l.reason : ''}`);
  readonly policyRq = this.#counter('sidemirror_mirror_policy_rq_total', 'Extended mirror policy decisions and outcomes', ['policy', 'outcome', 'reason'],
    (l) => `mirror_policy.${l.policy}.${l.outcome}${l.reason ? '.' + l.reason : ''}`);
  readonly policyHooks = this.#counter('sidemirror_mirror_policy_hook_total', 'Mirror hook calls by outcome', ['policy', 'hook', 'outcome'],
    (l) => `mirror_policy.${l.policy}.hook.${l.hook}.${l.outcome}`);
  readonly compareOutcomes = this.#counter('sidemirror_mirror_compare_total', 'Shadow comparisons by outcome, one per compared request', ['policy', 'outcome'],
    (l) => `mirror_policy.${l.policy}.compare.${l.outcome}`);
  readonly compareTime = this.#histogram('sidemirror_mirror_compare_response_time', 'Response time of the compared legs (ms): primary, candidate, reference', ['policy', 'leg'],
    (l) => `mirror_policy.${l.policy}.compare.${l.leg}_time`);
  readonly shadowActive = this.#gauge('sidemirror_shadow_rq_active', 'Shadow requests in flight', ['envoy_cluster_name'], cluster('shadow.rq_active'));
  readonly shadowRqTime = this.#histogram('sidemirror_shadow_rq_time', 'Shadow request time (ms)', ['envoy_cluster_name'], cluster('shadow.rq_time'));

  readonly accessLogWriteBuffered = this.#counter('envoy_access_log_file_write_buffered', 'Access log lines queued for writing', [], () => 'access_log_file.write_buffered');
  readonly accessLogWriteCompleted = this.#counter('envoy_access_log_file_write_completed', 'Access log batches written', [], () => 'access_log_file.write_completed');
  readonly accessLogWriteFailed = this.#counter('envoy_access_log_file_write_failed', 'Access log batches that failed to write', [], () => 'access_log_file.write_failed');
  readonly accessLogFlushedByTimer = this.#counter('envoy_access_log_file_flushed_by_timer', 'Access log flushes by the flush timer', [], () => 'access_log_file.flushed_by_timer');
  readonly accessLogReopenFailed = this.#counter('envoy_access_log_file_reopen_failed', 'Access log files that failed to reopen', [], () => 'access_log_file.reopen_failed');
  readonly accessLogTotalBuffered = this.#gauge('envoy_access_log_file_write_total_buffered', 'Access log bytes queued or being written', [], () => 'access_log_file.write_total_buffered');
  readonly accessLogDropped = this.#counter('sidemirror_access_log_dropped_total', 'Access log lines dropped at the queue bound', [], () => 'access_log_file.dropped');

  readonly controlPlaneConnected = this.#gauge('envoy_control_plane_connected_state', 'Whether the xDS stream is up (1) or not (0)', [], () => 'control_plane.connected_state');
  readonly listenerCreateFailure = this.#counter('envoy_listener_manager_listener_create_failure', 'Listeners that could not be created (their socket could not be bound)', [],
    () => 'listener_manager.listener_create_failure');
  readonly xdsUpdates = this.#counter('sidemirror_xds_updates_total', 'xDS responses by type and result', ['xds_type', 'result'],
    (l) => `${XDS_TEXT_PREFIX[String(l.xds_type)] ?? String(l.xds_type)}.update_${l.result}`);

  readonly #extra = new Map<string, CellFamily>();

  /**
   * A counter or gauge family registered on first use, for modules (HTTP filters) that keep
   * their own stats: one name, one family, however many connection managers ask for it.
   */
  family(kind: 'counter' | 'gauge', name: string, help: string, labelNames: string[], text: TextName): CellFamily {
    let family = this.#extra.get(name);
    if (!family) this.#extra.set(name, (family = kind === 'counter' ? this.#counter(name, help, labelNames, text) : this.#gauge(name, help, labelNames, text)));
    return family;
  }

  #counter(name: string, help: string, labelNames: string[], text: TextName): CellFamily {
    TEXT_NAMES.set(name, text);
    const family = new CellFamily(labelNames);
    this.#counters.push(family);
    new prom.Counter({
      name, help, labelNames, registers: [this.registry],
      collect() {
        this.reset();
        for (const { labels, cell } of family.entries()) this.inc(labels, cell.v);
      },
    });
    return family;
  }

  #gauge(name: string, help: string, labelNames: string[], text: TextName): CellFamily {
    TEXT_NAMES.set(name, text);
    const family = new CellFamily(labelNames);
    new prom.Gauge({
      name, help, labelNames, registers: [this.registry],
      collect() {
        for (const { labels, cell } of family.entries()) this.set(labels, cell.v);
      },
    });
    return family;
  }

  #histogram(name: string, help: string, labelNames: string[], text: TextName): HistogramFamily {
    TEXT_NAMES.set(name, text);
    const family = new HistogramFamily(name, help, labelNames, MS_BUCKETS);
    this.registry.registerMetric(family as unknown as prom.Metric);
    return family;
  }

  /** Prometheus text exposition for /stats/prometheus. */
  async prometheus(): Promise<string> {
    return this.registry.metrics();
  }

  get prometheusContentType(): string {
    return this.registry.contentType;
  }

  async text(filter?: (name: string) => boolean): Promise<string> {
    return renderText(await this.registry.getMetricsAsJSON(), filter);
  }

  async json(): Promise<{ stats: Array<{ name: string; value: number }> }> {
    return textToJson(await this.text());
  }

  resetCounters(): void {
    this.registry.resetMetrics();
    for (const family of this.#counters) family.zero();
  }
}
