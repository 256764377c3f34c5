import type { OutlierDetectionConfig } from '../../config/outlier-model';
import type { OutlierEjectionType } from '../../stats/registry';
import type { Host, LocalOriginResult, OutlierSink } from '../host';
import { SuccessRateBuckets } from './success-rate';

/** What a host's monitor tells its cluster's detector. */
export interface MonitorOwner {
  readonly config: OutlierDetectionConfig;
  /** A consecutive-error counter reached its threshold. */
  consecutiveErrors(monitor: HostMonitor, type: OutlierEjectionType): void;
}

/** Which of a host's two success-rate records: the upstream's answers, or local-origin events. */
export type Origin = 'external' | 'local';

/**
 * One host's outlier state (Envoy's DetectorHostMonitorImpl): consecutive-error counters, the
 * success-rate buckets, and its ejection record. Its memory is fixed, whatever the traffic.
 */
export class HostMonitor implements OutlierSink {
  consecutive5xx = 0;
  consecutiveGatewayFailure = 0;
  consecutiveLocalOriginFailure = 0;
  ejected = false;
  numEjections = 0;
  /** Multiplies base_ejection_time; grows with each ejection, shrinks while the host behaves. */
  ejectTimeBackoff = 0;
  lastEjectionMs: number | null = null;
  lastUnejectionMs: number | null = null;
  jitterMs = 0;
  readonly external = new SuccessRateBuckets();
  readonly local = new SuccessRateBuckets();
  /** The last interval's success rates (percent), -1 when the host had too few requests; for /clusters. */
  successRate = -1;
  localOriginSuccessRate = -1;

  constructor(
    readonly host: Host,
    private readonly owner: MonitorOwner,
  ) {}

  // implements OutlierSink
  putHttpResponseCode(status: number): void {
    const { config } = this.owner;
    const is5xx = status >= 500 && status < 600;
    this.external.request(!is5xx);
    if (!is5xx) {
      this.consecutive5xx = 0;
      this.consecutiveGatewayFailure = 0;
      return;
    }
    if (status === 502 || status === 503 || status === 504) {
      if (++this.consecutiveGatewayFailure === config.consecutiveGatewayFailure) this.owner.consecutiveErrors(this, 'consecutive_gateway_failure');
    } else {
      this.consecutiveGatewayFailure = 0;
    }
    if (++this.consecutive5xx === config.consecutive5xx) this.owner.consecutiveErrors(this, 'consecutive_5xx');
  }

  putResult(result: LocalOriginResult, code?: number): void {
    if (!this.owner.config.splitExternalLocalOriginErrors) {
      // Not split: a local-origin error counts as the status it stands for (Envoy's resultToHttpCode).
      const status = code ?? (result === 'timeout' ? 504 : result === 'connect_failed' ? 503 : 0);
      if (status !== 0) this.putHttpResponseCode(status);
      return;
    }
    if (result === 'connect_success') {
      this.local.request(true);
      this.consecutiveLocalOriginFailure = 0;
      return;
    }
    this.local.request(false);
    if (++this.consecutiveLocalOriginFailure === this.owner.config.consecutiveLocalOriginFailure) {
      this.owner.consecutiveErrors(this, 'consecutive_local_origin_failure');
    }
  }

  buckets(origin: Origin): SuccessRateBuckets {
    return origin === 'external' ? this.external : this.local;
  }

  resetConsecutive(): void {
    this.consecutive5xx = 0;
    this.consecutiveGatewayFailure = 0;
    this.consecutiveLocalOriginFailure = 0;
  }
}
