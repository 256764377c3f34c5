import type { Cell, StatsRegistry } from './registry';

// Label-bound handles for the TCP proxy: its own `tcp.<stat_prefix>.*` and the connection-level
// `cluster.<name>.upstream_cx_*` stats that only raw TCP connections keep (HTTP pools count theirs
// in ClusterStats).

export class TcpStats {
  readonly cxTotal: Cell;
  readonly cxNoRoute: Cell;
  readonly rxBytes: Cell;
  readonly txBytes: Cell;
  readonly pausedReading: Cell;
  readonly resumedReading: Cell;
  readonly idleTimeout: Cell;
  readonly maxDuration: Cell;
  readonly upstreamFlushTotal: Cell;
  readonly upstreamFlushActive: Cell;

  constructor(prefix: string, registry: StatsRegistry) {
    const l = { envoy_tcp_prefix: prefix };
    this.cxTotal = registry.tcpCxTotal.labels(l);
    this.cxNoRoute = registry.tcpCxNoRoute.labels(l);
    this.rxBytes = registry.tcpCxRxBytes.labels(l);
    this.txBytes = registry.tcpCxTxBytes.labels(l);
    this.pausedReading = registry.tcpPausedReading.labels(l);
    this.resumedReading = registry.tcpResumedReading.labels(l);
    this.idleTimeout = registry.tcpIdleTimeout.labels(l);
    this.maxDuration = registry.tcpMaxDuration.labels(l);
    this.upstreamFlushTotal = registry.tcpUpstreamFlushTotal.labels(l);
    this.upstreamFlushActive = registry.tcpUpstreamFlushActive.labels(l);
  }
}

export class ClusterConnectionStats {
  readonly cxActive: Cell;
  readonly cxConnectTimeout: Cell;
  readonly cxOverflow: Cell;
  readonly cxAttemptsExceeded: Cell;
  readonly rxBytes: Cell;
  readonly txBytes: Cell;
  readonly pausedReading: Cell;
  readonly resumedReading: Cell;

  constructor(cluster: string, registry: StatsRegistry) {
    const l = { envoy_cluster_name: cluster };
    this.cxActive = registry.clusterCxActive.labels(l);
    this.cxConnectTimeout = registry.clusterCxConnectTimeout.labels(l);
    this.cxOverflow = registry.clusterCxOverflow.labels(l);
    this.cxAttemptsExceeded = registry.clusterCxAttemptsExceeded.labels(l);
    this.rxBytes = registry.clusterCxRxBytes.labels(l);
    this.txBytes = registry.clusterCxTxBytes.labels(l);
    this.pausedReading = registry.clusterPausedReading.labels(l);
    this.resumedReading = registry.clusterResumedReading.labels(l);
  }
}
