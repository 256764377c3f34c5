import type { OutlierDetectionConfig } from '../../config/outlier-model';
import type { OutlierStats } from '../../stats/outlier-stats';
import type { OutlierEjectionType } from '../../stats/registry';
import type { Host } from '../host';
import { HostMonitor, type MonitorOwner, type Origin } from './host-monitor';
import { NO_VERDICT, type SuccessRateVerdict, successRateThreshold } from './success-rate';

// Envoy's outlier detector (DetectorImpl), one per cluster:
//   - consecutive 5xx / gateway failures / local-origin failures eject a host as soon as the
//     count is reached (Envoy posts it to its main thread; one thread here, so at once);
//   - every `interval` one timer brings back hosts whose ejection time is over, rotates the
//     success-rate buckets, runs success-rate and failure-percentage ejection, and lets the
//     ejection-time multiplier of well-behaved hosts decay;
//   - an ejection is refused (ejections_overflow) when it would take the ejected share of hosts
//     past max_ejection_percent, and happens only with its enforcing_* percent of chance;
//   - a host is out for min(base_ejection_time × multiplier, max_ejection_time) + jitter; the
//     multiplier grows by one per ejection (while below max/base + 1).

export interface OutlierDetectorOptions {
  readonly config: OutlierDetectionConfig;
  readonly stats: OutlierStats;
  /** A host was ejected or brought back: the cluster recomputes the hosts it balances over. */
  readonly onChange: () => void;
  /** [0, 1); Math.random by default. */
  readonly random?: () => number;
  /** A monotonic clock in milliseconds; performance.now by default. */
  readonly now?: () => number;
}

const SUCCESS_RATE_TYPE: Record<Origin, OutlierEjectionType> = { external: 'success_rate', local: 'local_origin_success_rate' };
const FAILURE_PERCENTAGE_TYPE: Record<Origin, OutlierEjectionType> = { external: 'failure_percentage', local: 'local_origin_failure_percentage' };

/** Passive health checking for one cluster's hosts. */
export class OutlierDetector implements MonitorOwner {
  readonly config: OutlierDetectionConfig;
  readonly #monitors = new Map<Host, HostMonitor>();
  #ejected = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  readonly #verdicts: Record<Origin, SuccessRateVerdict> = { external: NO_VERDICT, local: NO_VERDICT };
  readonly #random: () => number;
  readonly #now: () => number;

  constructor(private readonly options: OutlierDetectorOptions) {
    this.config = options.config;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? (() => performance.now());
    this.#arm();
  }

  /** Makes the watched hosts equal to `hosts`; a host that leaves takes its ejection with it. */
  setHosts(hosts: readonly Host[]): void {
    if (this.#stopped) return;
    const keep = new Set(hosts);
    for (const [host, monitor] of this.#monitors) {
      if (keep.has(host)) continue;
      if (monitor.ejected) this.#countUneject();
      host.outlier = null;
      this.#monitors.delete(host);
    }
    for (const host of hosts) {
      if (this.#monitors.has(host)) continue;
      const monitor = new HostMonitor(host, this);
      this.#monitors.set(host, monitor);
      host.outlier = monitor;
    }
  }

  isEjected(host: Host): boolean {
    return this.#monitors.get(host)?.ejected ?? false;
  }

  monitor(host: Host): HostMonitor | undefined {
    return this.#monitors.get(host);
  }

  /** The cluster's last success-rate mean and ejection threshold (-1: not computed), for /clusters. */
  verdict(origin: Origin): SuccessRateVerdict {
    return this.#verdicts[origin];
  }

  /** An active health check passed: with successful_active_health_check_uneject_host, the host is back. */
  healthCheckPassed(host: Host): void {
    const monitor = this.#monitors.get(host);
    if (!monitor?.ejected || !this.config.successfulActiveHealthCheckUnejectHost || this.#stopped) return;
    this.#uneject(monitor, this.#now());
    this.options.onChange();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    // The gauge is shared with a cluster that replaces this one: take back only our own ejections.
    this.options.stats.ejectionsActive.dec(this.#ejected);
    this.#ejected = 0;
    for (const [host, monitor] of this.#monitors) if (host.outlier === monitor) host.outlier = null;
    this.#monitors.clear();
  }

  // implements MonitorOwner
  consecutiveErrors(monitor: HostMonitor, type: OutlierEjectionType): void {
    if (this.#stopped || this.#monitors.get(monitor.host) !== monitor || monitor.ejected) return;
    this.options.stats.detected(type);
    this.#eject(monitor, type);
    // Reset even when the ejection was refused, so that the next bout is counted afresh.
    if (type === 'consecutive_5xx') {
      this.options.stats.inc('ejections_consecutive_5xx');
      monitor.consecutive5xx = 0;
    } else if (type === 'consecutive_gateway_failure') monitor.consecutiveGatewayFailure = 0;
    else monitor.consecutiveLocalOriginFailure = 0;
  }

  #eject(monitor: HostMonitor, type: OutlierEjectionType): void {
    if (monitor.ejected) return;
    const { config, stats } = this.options;
    const ejectedPercent = (100 * (this.#ejected + 1)) / this.#monitors.size;
    const allowed = ejectedPercent <= config.maxEjectionPercent || (config.alwaysEjectOneHost && this.#ejected === 0);
    if (!allowed) {
      stats.inc('ejections_overflow');
      return;
    }
    if (type === 'consecutive_5xx' || type === 'success_rate') stats.inc('ejections_total');
    if (!(Math.floor(this.#random() * 100) < this.#enforcing(type))) return;
    this.#ejected++;
    stats.ejectionsActive.inc();
    stats.enforced(type);
    monitor.ejected = true;
    monitor.numEjections++;
    monitor.lastEjectionMs = this.#now();
    monitor.jitterMs = Math.floor(this.#random() * (config.maxEjectionTimeJitterMs + 1));
    if (monitor.ejectTimeBackoff * config.baseEjectionTimeMs < config.maxEjectionTimeMs + config.baseEjectionTimeMs) monitor.ejectTimeBackoff++;
    this.options.onChange();
  }

  #enforcing(type: OutlierEjectionType): number {
    const c = this.config;
    switch (type) {
      case 'consecutive_5xx': return c.enforcingConsecutive5xx;
      case 'consecutive_gateway_failure': return c.enforcingConsecutiveGatewayFailure;
      case 'consecutive_local_origin_failure': return c.enforcingConsecutiveLocalOriginFailure;
      case 'success_rate': return c.enforcingSuccessRate;
      case 'local_origin_success_rate': return c.enforcingLocalOriginSuccessRate;
      case 'failure_percentage': return c.enforcingFailurePercentage;
      case 'local_origin_failure_percentage': return c.enforcingFailurePercentageLocalOrigin;
    }
  }

  #uneject(monitor: HostMonitor, now: number): void {
    monitor.ejected = false;
    monitor.resetConsecutive();
    monitor.lastUnejectionMs = now;
    this.#countUneject();
  }

  #countUneject(): void {
    this.#ejected--;
    this.options.stats.ejectionsActive.dec();
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.sweep();
      if (!this.#stopped) this.#arm();
    }, this.config.intervalMs);
    this.#timer.unref();
  }

  /**
   * The work of one interval (its timer calls it; tests may too): hosts whose time is up come
   * back, success-rate and failure-percentage ejections run, ejection multipliers decay.
   */
  sweep(): void {
    if (this.#stopped) return;
    const { config } = this;
    const now = this.#now();
    let changed = false;
    for (const m of this.#monitors.values()) {
      if (m.ejected && Math.min(config.baseEjectionTimeMs * m.ejectTimeBackoff, config.maxEjectionTimeMs) + m.jitterMs <= now - m.lastEjectionMs!) {
        this.#uneject(m, now);
        changed = true;
      }
      m.external.rotate();
      m.local.rotate();
      m.successRate = -1;
      m.localOriginSuccessRate = -1;
    }
    this.#successRateEjections('external');
    this.#successRateEjections('local');
    for (const m of this.#monitors.values()) {
      if (!m.ejected && m.lastUnejectionMs !== null && now - m.lastUnejectionMs >= config.intervalMs && m.ejectTimeBackoff > 0) m.ejectTimeBackoff--;
    }
    if (changed) this.options.onChange();
  }

  /** Envoy's processSuccessRateEjections for one origin: success rate against the cluster, then failure percentage. */
  #successRateEjections(origin: Origin): void {
    const c = this.config;
    this.#verdicts[origin] = NO_VERDICT;
    if (this.#monitors.size < c.successRateMinimumHosts && this.#monitors.size < c.failurePercentageMinimumHosts) return;
    const bySuccessRate: Array<{ m: HostMonitor; rate: number }> = [];
    const byFailurePercentage: Array<{ m: HostMonitor; rate: number }> = [];
    for (const m of this.#monitors.values()) {
      if (m.ejected) continue;
      const rv = m.buckets(origin).rateAndVolume();
      if (rv === null) continue;
      if (rv.volume >= Math.min(c.successRateRequestVolume, c.failurePercentageRequestVolume)) {
        if (origin === 'external') m.successRate = rv.rate;
        else m.localOriginSuccessRate = rv.rate;
      }
      if (rv.volume >= c.successRateRequestVolume) bySuccessRate.push({ m, rate: rv.rate });
      if (rv.volume >= c.failurePercentageRequestVolume) byFailurePercentage.push({ m, rate: rv.rate });
    }
    const stats = this.options.stats;
    if (bySuccessRate.length > 0 && bySuccessRate.length >= c.successRateMinimumHosts) {
      const verdict = successRateThreshold(bySuccessRate.map((h) => h.rate), c.successRateStdevFactor / 1000);
      this.#verdicts[origin] = verdict;
      for (const { m, rate } of bySuccessRate) {
        if (rate >= verdict.threshold) continue;
        stats.inc('ejections_success_rate');
        stats.detected(SUCCESS_RATE_TYPE[origin]);
        this.#eject(m, SUCCESS_RATE_TYPE[origin]);
      }
    }
    if (byFailurePercentage.length > 0 && byFailurePercentage.length >= c.failurePercentageMinimumHosts) {
      for (const { m, rate } of byFailurePercentage) {
        if (100 - rate < c.failurePercentageThreshold) continue;
        stats.detected(FAILURE_PERCENTAGE_TYPE[origin]);
        this.#eject(m, FAILURE_PERCENTAGE_TYPE[origin]);
      }
    }
  }
}
