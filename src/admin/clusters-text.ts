import type { UpstreamCluster } from '../upstream/cluster-manager';
import type { Host } from '../upstream/host';

/** Envoy's /clusters text: `cluster::fact::value` lines, per cluster then per host. */
export function clustersText(clusters: readonly UpstreamCluster[], versionInfo: string): string {
  const lines = [`version_info::${versionInfo}`];
  for (const c of clusters) {
    const n = c.name;
    const cb = c.config.circuitBreakers;
    lines.push(`${n}::observability_name::${n}`);
    const outlier = c.outlierDetector;
    if (outlier) {
      const ext = outlier.verdict('external');
      const local = outlier.verdict('local');
      lines.push(`${n}::outlier::success_rate_average::${formatG(ext.average)}`, `${n}::outlier::success_rate_ejection_threshold::${formatG(ext.threshold)}`,
        `${n}::outlier::local_origin_success_rate_average::${formatG(local.average)}`,
        `${n}::outlier::local_origin_success_rate_ejection_threshold::${formatG(local.threshold)}`);
    }
    for (const prio of ['default_priority', 'high_priority']) {
      lines.push(`${n}::${prio}::max_connections::${cb.maxConnections}`, `${n}::${prio}::max_pending_requests::${cb.maxPendingRequests}`,
        `${n}::${prio}::max_requests::${cb.maxRequests}`, `${n}::${prio}::max_retries::${cb.maxRetries}`);
    }
    lines.push(`${n}::added_via_api::false`);
    for (const h of c.hosts) {
      const p = `${n}::${h.addressPort}`;
      const monitor = outlier?.monitor(h);
      lines.push(
        `${p}::cx_active::0`, `${p}::cx_connect_fail::${h.counters.cxConnectFail}`, `${p}::cx_total::${h.counters.cxTotal}`,
        `${p}::rq_active::${h.active}`, `${p}::rq_error::${h.counters.rqError}`, `${p}::rq_success::${h.counters.rqSuccess}`,
        `${p}::rq_timeout::${h.counters.rqTimeout}`, `${p}::rq_total::${h.counters.rqTotal}`,
        `${p}::hostname::${h.hostname}`, `${p}::health_flags::${c.healthFlags(h)}`,
        `${p}::weight::${h.weight}`, `${p}::region::`, `${p}::zone::`, `${p}::sub_zone::`, `${p}::canary::false`,
        `${p}::priority::0`, `${p}::success_rate::${monitor?.successRate ?? -1}`,
        `${p}::local_origin_success_rate::${monitor?.localOriginSuccessRate ?? -1}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

/** Envoy's /clusters?format=json (admin.v3.Clusters), with the fields we track. */
export function clustersJson(clusters: readonly UpstreamCluster[]): unknown {
  return {
    cluster_statuses: clusters.map((c) => ({
      name: c.name,
      added_via_api: false,
      ...thresholds(c),
      host_statuses: c.hosts.map((h) => ({
        address: { socket_address: { address: h.address, port_value: h.port } },
        stats: [
          { name: 'cx_connect_fail', value: String(h.counters.cxConnectFail) },
          { name: 'cx_total', value: String(h.counters.cxTotal) },
          { name: 'rq_error', value: String(h.counters.rqError) },
          { name: 'rq_success', value: String(h.counters.rqSuccess) },
          { name: 'rq_timeout', value: String(h.counters.rqTimeout) },
          { name: 'rq_total', value: String(h.counters.rqTotal) },
          { name: 'rq_active', type: 'GAUGE', value: String(h.active) },
        ],
        health_status: {
          eds_health_status: h.healthy ? 'HEALTHY' : 'UNHEALTHY',
          ...(c.failedActiveHealthCheck(h) ? { failed_active_health_check: true } : {}),
          ...(c.failedOutlierCheck(h) ? { failed_outlier_check: true } : {}),
        },
        ...hostSuccessRates(c, h),
        weight: h.weight,
        hostname: h.hostname,
      })),
    })),
  };
}

/** ClusterStatus's success-rate ejection thresholds, present (as Envoy) only when positive. */
function thresholds(c: UpstreamCluster): Record<string, { value: number }> {
  const outlier = c.outlierDetector;
  const out: Record<string, { value: number }> = {};
  if (!outlier) return out;
  const ext = outlier.verdict('external').threshold;
  const local = outlier.verdict('local').threshold;
  if (ext > 0) out.success_rate_ejection_threshold = { value: ext };
  if (local > 0) out.local_origin_success_rate_ejection_threshold = { value: local };
  return out;
}

/** HostStatus's success rates of the last interval, present only when computed. */
function hostSuccessRates(c: UpstreamCluster, h: Host): Record<string, { value: number }> {
  const m = c.outlierDetector?.monitor(h);
  const out: Record<string, { value: number }> = {};
  if (m && m.successRate >= 0) out.success_rate = { value: m.successRate };
  if (m && m.localOriginSuccessRate >= 0) out.local_origin_success_rate = { value: m.localOriginSuccessRate };
  return out;
}

/** C's %g, as Envoy prints the cluster's success-rate figures: six significant digits, no trailing zeros. */
function formatG(v: number): string {
  return String(Number(v.toPrecision(6)));
}
