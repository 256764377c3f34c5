import { DEFAULT_HEALTHY_PANIC_THRESHOLD, type OutlierDetectionConfig } from '../outlier-model';
import { type Ctx, type Pb, at, durationMs, fail, wrapped } from './common';

// Envoy's defaults (DetectorConfig) and its proto's validation rules, field by field.

const PERCENT_FIELDS = [
  'max_ejection_percent', 'enforcing_consecutive_5xx', 'enforcing_success_rate', 'enforcing_consecutive_gateway_failure',
  'enforcing_consecutive_local_origin_failure', 'enforcing_local_origin_success_rate', 'failure_percentage_threshold',
  'enforcing_failure_percentage', 'enforcing_failure_percentage_local_origin',
] as const;

/** Envoy's max_ejection_time when unset: 300 s, or base_ejection_time when that is longer. */
const DEFAULT_MAX_EJECTION_TIME_MS = 300_000;

/** `outlier_detection` of a cluster; null when the cluster has none. */
export function decodeOutlierDetection(od: Pb | undefined, ctx: Ctx): OutlierDetectionConfig | null {
  if (!od) return null;
  for (const field of PERCENT_FIELDS) {
    const v = wrapped<number>(od[field], 0);
    if (v > 100) fail(at(ctx, field), `${field} must be at most 100, got ${v}`);
  }
  const intervalMs = positive(od, 'interval', 10_000, ctx);
  const baseEjectionTimeMs = positive(od, 'base_ejection_time', 30_000, ctx);
  const maxEjectionTimeMs = positive(od, 'max_ejection_time', Math.max(DEFAULT_MAX_EJECTION_TIME_MS, baseEjectionTimeMs), ctx);
  if (maxEjectionTimeMs < baseEjectionTimeMs) {
    fail(at(ctx, 'max_ejection_time'), "outlier detector's max_ejection_time cannot be smaller than base_ejection_time");
  }
  const maxEjectionTimeJitterMs = durationMs(od.max_ejection_time_jitter as Pb | undefined, 0);
  if (maxEjectionTimeJitterMs < 0) fail(at(ctx, 'max_ejection_time_jitter'), 'max_ejection_time_jitter must not be negative');
  return {
    intervalMs,
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionTimeJitterMs: Math.max(0, maxEjectionTimeJitterMs),
    maxEjectionPercent: percent(od, 'max_ejection_percent', 10),
    alwaysEjectOneHost: wrapped(od.always_eject_one_host, false),
    consecutive5xx: wrapped(od.consecutive_5xx, 5),
    consecutiveGatewayFailure: wrapped(od.consecutive_gateway_failure, 5),
    consecutiveLocalOriginFailure: wrapped(od.consecutive_local_origin_failure, 5),
    splitExternalLocalOriginErrors: Boolean(od.split_external_local_origin_errors),
    enforcingConsecutive5xx: percent(od, 'enforcing_consecutive_5xx', 100),
    enforcingConsecutiveGatewayFailure: percent(od, 'enforcing_consecutive_gateway_failure', 0),
    enforcingConsecutiveLocalOriginFailure: percent(od, 'enforcing_consecutive_local_origin_failure', 100),
    successRateMinimumHosts: wrapped(od.success_rate_minimum_hosts, 5),
    successRateRequestVolume: wrapped(od.success_rate_request_volume, 100),
    successRateStdevFactor: wrapped(od.success_rate_stdev_factor, 1900),
    enforcingSuccessRate: percent(od, 'enforcing_success_rate', 100),
    enforcingLocalOriginSuccessRate: percent(od, 'enforcing_local_origin_success_rate', 100),
    failurePercentageThreshold: percent(od, 'failure_percentage_threshold', 85),
    failurePercentageMinimumHosts: wrapped(od.failure_percentage_minimum_hosts, 5),
    failurePercentageRequestVolume: wrapped(od.failure_percentage_request_volume, 50),
    enforcingFailurePercentage: percent(od, 'enforcing_failure_percentage', 0),
    enforcingFailurePercentageLocalOrigin: percent(od, 'enforcing_failure_percentage_local_origin', 0),
    successfulActiveHealthCheckUnejectHost: wrapped(od.successful_active_health_check_uneject_host, true),
  };
}

/**
 * common_lb_config.healthy_panic_threshold as Envoy reads it: a Percent rounded to a whole
 * number, 50 when unset; 0 turns panic mode off.
 */
export function decodeHealthyPanicThreshold(common: Pb | undefined, ctx: Ctx): number {
  const p = common?.healthy_panic_threshold as Pb | undefined;
  if (!p) return DEFAULT_HEALTHY_PANIC_THRESHOLD;
  const value = Number(p.value ?? 0);
  if (!(value >= 0 && value <= 100)) {
    fail(at(at(ctx, 'healthy_panic_threshold'), 'value'), `must be between 0 and 100, got ${value}`);
    return DEFAULT_HEALTHY_PANIC_THRESHOLD;
  }
  return Math.round(value);
}

function percent(od: Pb, field: string, fallback: number): number {
  return Math.min(wrapped<number>(od[field], fallback), 100);
}

/** A duration the proto requires to be greater than zero when set. */
function positive(od: Pb, field: string, fallback: number, ctx: Ctx): number {
  const d = od[field] as Pb | undefined;
  if (d === undefined || d === null) return fallback;
  const ms = durationMs(d, fallback);
  if (!(ms > 0)) {
    fail(at(ctx, field), `${field} must be greater than 0s`);
    return fallback;
  }
  return ms;
}
