// The cluster's outlier detection (Envoy's envoy.config.cluster.v3.OutlierDetection) and the
// load balancer's panic threshold, with Envoy's defaults filled in and durations in milliseconds.

/** Envoy's OutlierDetection; percentages are 0..100, the stdev factor is Envoy's ×1000 integer. */
export interface OutlierDetectionConfig {
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  /** Never below baseEjectionTimeMs (Envoy: 300 s, or base_ejection_time when that is larger). */
  readonly maxEjectionTimeMs: number;
  /** Up to this much (chosen at random per ejection) is added to a host's ejection time. */
  readonly maxEjectionTimeJitterMs: number;
  readonly maxEjectionPercent: number;
  /** Eject one host even when max_ejection_percent would allow none. */
  readonly alwaysEjectOneHost: boolean;
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly consecutiveLocalOriginFailure: number;
  /** Count local-origin errors (connect failures, resets, timeouts) apart from the upstream's 5xx. */
  readonly splitExternalLocalOriginErrors: boolean;
  readonly enforcingConsecutive5xx: number;
  readonly enforcingConsecutiveGatewayFailure: number;
  readonly enforcingConsecutiveLocalOriginFailure: number;
  readonly successRateMinimumHosts: number;
  readonly successRateRequestVolume: number;
  readonly successRateStdevFactor: number;
  readonly enforcingSuccessRate: number;
  readonly enforcingLocalOriginSuccessRate: number;
  readonly failurePercentageThreshold: number;
  readonly failurePercentageMinimumHosts: number;
  readonly failurePercentageRequestVolume: number;
  readonly enforcingFailurePercentage: number;
  readonly enforcingFailurePercentageLocalOrigin: number;
  /** A passing active health check brings an ejected host back at once. */
  readonly successfulActiveHealthCheckUnejectHost: boolean;
}

/** common_lb_config.healthy_panic_threshold's default: below 50 % healthy, balance over every host. */
export const DEFAULT_HEALTHY_PANIC_THRESHOLD = 50;
