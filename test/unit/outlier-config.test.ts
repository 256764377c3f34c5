import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { Cluster } from '../../src/config/model';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';

// outlier_detection and common_lb_config.healthy_panic_threshold: values as Envoy reads them,
// and every error by path in one report.

type Json = Record<string, unknown>;

function text(extra: Json): string {
  return bootstrap({ listeners: [listener(routeConfig([route('/', 'c')]))], clusters: [cluster('c', [8081], extra)] });
}

function decoded(extra: Json): Cluster {
  return loadBootstrapText(text(extra)).bootstrap.clusters[0]!;
}

function issuesOf(extra: Json): readonly ConfigIssue[] {
  try {
    loadBootstrapText(text(extra));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

const C = 'static_resources.clusters[0]';

test('values: durations, wrappers and booleans in either spelling; max_ejection_time defaults to the larger of 300 s and the base', () => {
  const c = decoded({
    outlierDetection: {
      consecutive5xx: 3, interval: '0.25s', baseEjectionTime: '400s', maxEjectionPercent: 100, splitExternalLocalOriginErrors: true,
      consecutive_local_origin_failure: 2, enforcing_consecutive_local_origin_failure: 40, success_rate_stdev_factor: 1000,
      max_ejection_time_jitter: '0.05s', always_eject_one_host: true, successful_active_health_check_uneject_host: false,
    },
    commonLbConfig: { healthyPanicThreshold: { value: 33.5 } },
  });
  expect(c.outlierDetection).toMatchObject({
    consecutive5xx: 3, intervalMs: 250, baseEjectionTimeMs: 400_000, maxEjectionTimeMs: 400_000, maxEjectionPercent: 100,
    splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 2, enforcingConsecutiveLocalOriginFailure: 40,
    successRateStdevFactor: 1000, maxEjectionTimeJitterMs: 50, alwaysEjectOneHost: true, successfulActiveHealthCheckUnejectHost: false,
  });
  expect(c.healthyPanicThreshold).toBe(34); // Envoy rounds the Percent
});

test('no outlier_detection: none; no common_lb_config: Envoy\'s 50 % panic threshold; 0 turns it off', () => {
  expect(decoded({}).outlierDetection).toBeNull();
  expect(decoded({}).healthyPanicThreshold).toBe(50);
  expect(decoded({ common_lb_config: { healthy_panic_threshold: {} } }).healthyPanicThreshold).toBe(0);
});

test('every bad field by path, in one report; fields sidemirror leaves out are refused by name', () => {
  const issues = issuesOf({
    outlier_detection: {
      interval: '0s', base_ejection_time: '10s', max_ejection_time: '5s', max_ejection_percent: 101, enforcing_success_rate: 200,
      monitors: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/google.protobuf.Empty' } }],
    },
    common_lb_config: { healthy_panic_threshold: { value: 150 }, locality_weighted_lb_config: {} },
  });
  expect(issues.map((i) => `${i.path}: ${i.message}`).sort()).toEqual([
    `${C}.common_lb_config.healthy_panic_threshold.value: must be between 0 and 100, got 150`,
    `${C}.common_lb_config.locality_weighted_lb_config: not supported by sidemirror`,
    `${C}.outlier_detection.enforcing_success_rate: enforcing_success_rate must be at most 100, got 200`,
    `${C}.outlier_detection.interval: interval must be greater than 0s`,
    `${C}.outlier_detection.max_ejection_percent: max_ejection_percent must be at most 100, got 101`,
    `${C}.outlier_detection.max_ejection_time: outlier detector's max_ejection_time cannot be smaller than base_ejection_time`,
    `${C}.outlier_detection.monitors: not supported by sidemirror`,
  ]);
});
