import { loadBootstrapText } from '../../src/config/load';
import type { OutlierDetectionConfig } from '../../src/config/outlier-model';
import { OutlierStats } from '../../src/stats/outlier-stats';
import { StatsRegistry } from '../../src/stats/registry';
import type { Host } from '../../src/upstream/host';
import { OutlierDetector } from '../../src/upstream/outlier/detector';
import { successRateThreshold } from '../../src/upstream/outlier/success-rate';
import { inPanic } from '../../src/upstream/panic';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';

// The detector's arithmetic on a clock the test moves: its own interval timer is set an hour
// away, and each test calls sweep() where the timer would have fired.

const HOUR = 3_600_000;

function config(over: Partial<OutlierDetectionConfig> = {}): OutlierDetectionConfig {
  const c = loadBootstrapText(bootstrap({
    listeners: [listener(routeConfig([route('/', 'c')]))],
    clusters: [cluster('c', [8081], { outlier_detection: {} })],
  })).bootstrap.clusters[0]!.outlierDetection!;
  return { ...c, intervalMs: HOUR, ...over };
}

function host(i: number): Host {
  return {
    address: '127.0.0.1', port: 9000 + i, addressPort: `127.0.0.1:${9000 + i}`, hostname: '', weight: 1, pool: null as never, tls: null,
    healthy: true, active: 0, counters: { rqTotal: 0, rqSuccess: 0, rqError: 0, rqTimeout: 0, cxTotal: 0, cxConnectFail: 0 }, outlier: null,
  };
}

interface Rig {
  readonly detector: OutlierDetector;
  readonly hosts: Host[];
  readonly stat: (name: string) => number;
  readonly clock: { now: number };
  changes: number;
}

let counter = 0;
const rigs: OutlierDetector[] = [];
afterEach(() => {
  for (const d of rigs.splice(0)) d.stop();
});

function rig(n: number, over: Partial<OutlierDetectionConfig> = {}, random = () => 0): Rig {
  const registry = new StatsRegistry();
  const name = `c${counter++}`;
  const stats = new OutlierStats(name, registry);
  const clock = { now: 0 };
  const hosts = Array.from({ length: n }, (_, i) => host(i));
  const r: Rig = {
    detector: null as never, hosts, clock, changes: 0,
    stat: (s) => {
      if (s === 'ejections_active') return stats.ejectionsActive.v;
      return registry.clusterOutlier[s as keyof typeof registry.clusterOutlier].labels({ envoy_cluster_name: name }).v;
    },
  };
  const detector = new OutlierDetector({ config: config(over), stats, onChange: () => r.changes++, random, now: () => clock.now });
  detector.setHosts(hosts);
  rigs.push(detector);
  return Object.assign(r, { detector });
}

function codes(h: Host, ...statuses: number[]): void {
  for (const s of statuses) h.outlier!.putHttpResponseCode(s);
}

describe('Envoy defaults', () => {
  test('an empty outlier_detection has Envoy\'s values', () => {
    const c = config({ intervalMs: 10_000 });
    expect(c).toEqual({
      intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionTimeJitterMs: 0, maxEjectionPercent: 10,
      alwaysEjectOneHost: false, consecutive5xx: 5, consecutiveGatewayFailure: 5, consecutiveLocalOriginFailure: 5,
      splitExternalLocalOriginErrors: false, enforcingConsecutive5xx: 100, enforcingConsecutiveGatewayFailure: 0,
      enforcingConsecutiveLocalOriginFailure: 100, successRateMinimumHosts: 5, successRateRequestVolume: 100, successRateStdevFactor: 1900,
      enforcingSuccessRate: 100, enforcingLocalOriginSuccessRate: 100, failurePercentageThreshold: 85, failurePercentageMinimumHosts: 5,
      failurePercentageRequestVolume: 50, enforcingFailurePercentage: 0, enforcingFailurePercentageLocalOrigin: 0,
      successfulActiveHealthCheckUnejectHost: true,
    });
  });
});

describe('consecutive errors', () => {
  test('the 5th 5xx in a row ejects; a success in between starts the count again', () => {
    const r = rig(2, { maxEjectionPercent: 50 });
    const [a] = r.hosts;
    codes(a!, 500, 500, 500, 500, 200, 500, 500, 500, 500);
    expect(r.detector.isEjected(a!)).toBe(false);
    codes(a!, 503);
    expect(r.detector.isEjected(a!)).toBe(true);
    expect(r.changes).toBe(1);
    expect([r.stat('ejections_active'), r.stat('ejections_detected_consecutive_5xx'), r.stat('ejections_enforced_consecutive_5xx'),
      r.stat('ejections_enforced_total'), r.stat('ejections_total'), r.stat('ejections_consecutive_5xx')]).toEqual([1, 1, 1, 1, 1, 1]);
    // Gateway failures ran alongside (503 was the first of them): 1 of 5, nothing detected.
    expect(r.stat('ejections_detected_consecutive_gateway_failure')).toBe(0);
  });

  test('consecutive gateway failures: detected, but by default (enforcing 0) never enforced', () => {
    const r = rig(2, { maxEjectionPercent: 50, consecutive5xx: 100 });
    codes(r.hosts[0]!, 502, 503, 504, 502, 503);
    expect(r.stat('ejections_detected_consecutive_gateway_failure')).toBe(1);
    expect(r.stat('ejections_enforced_total')).toBe(0);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false);
  });

  test('enforcing_consecutive_gateway_failure 100: five 502-504 eject; a 500 breaks the run', () => {
    const r = rig(2, { maxEjectionPercent: 50, consecutive5xx: 100, enforcingConsecutiveGatewayFailure: 100 });
    codes(r.hosts[0]!, 502, 503, 504, 500, 502, 503, 504, 502);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false);
    codes(r.hosts[0]!, 503);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(true);
    expect(r.stat('ejections_enforced_consecutive_gateway_failure')).toBe(1);
    expect(r.stat('ejections_total')).toBe(0); // Envoy's deprecated total counts 5xx and success-rate ejections only
  });

  test('errors not split: a timeout counts as a 504, a reset or failed connect as a 503, a connection as nothing', () => {
    const r = rig(2, { maxEjectionPercent: 50, enforcingConsecutiveGatewayFailure: 100 });
    const a = r.hosts[0]!.outlier!;
    a.putResult('connect_success');
    a.putResult('timeout', 504);
    a.putResult('connect_failed');
    a.putResult('connect_success');
    a.putResult('connect_failed');
    a.putResult('timeout', 504);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false);
    a.putResult('connect_failed');
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(true);
    expect(r.stat('ejections_detected_consecutive_gateway_failure')).toBe(1);
    expect(r.stat('ejections_detected_consecutive_5xx')).toBe(0); // the same 5th error: the host was already out
  });

  test('split: local-origin failures have their own count, reset by a connection; 5xx are left to consecutive_5xx', () => {
    const r = rig(2, { maxEjectionPercent: 50, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 3 });
    const a = r.hosts[0]!.outlier!;
    a.putResult('connect_failed');
    a.putResult('timeout', 504);
    a.putResult('connect_success');
    a.putResult('connect_failed');
    codes(r.hosts[0]!, 500, 500, 500, 500);
    a.putResult('timeout', 504);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false);
    a.putResult('connect_failed');
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(true);
    expect(r.stat('ejections_enforced_consecutive_local_origin_failure')).toBe(1);
    expect(r.stat('ejections_detected_consecutive_5xx')).toBe(0);
  });

  test('enforcing_consecutive_5xx is a chance per detection', () => {
    let draw = 0.6;
    const r = rig(2, { maxEjectionPercent: 50, enforcingConsecutive5xx: 50 }, () => draw);
    codes(r.hosts[0]!, 500, 500, 500, 500, 500);
    expect(r.stat('ejections_detected_consecutive_5xx')).toBe(1);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false); // drew 60 of 100: not under 50
    draw = 0.4;
    codes(r.hosts[0]!, 500, 500, 500, 500, 500);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(true);
  });
});

describe('max_ejection_percent', () => {
  test('an ejection that would take the ejected share past it is refused and counted as overflow', () => {
    const r = rig(4, { maxEjectionPercent: 50 });
    for (const h of r.hosts) codes(h, 500, 500, 500, 500, 500);
    expect(r.hosts.map((h) => r.detector.isEjected(h))).toEqual([true, true, false, false]);
    expect(r.stat('ejections_overflow')).toBe(2);
    expect(r.stat('ejections_active')).toBe(2);
  });

  test('Envoy\'s 10 % default ejects nobody from a 2-host cluster, unless always_eject_one_host', () => {
    const plain = rig(2);
    codes(plain.hosts[0]!, 500, 500, 500, 500, 500);
    expect(plain.detector.isEjected(plain.hosts[0]!)).toBe(false);
    expect(plain.stat('ejections_overflow')).toBe(1);
    const one = rig(2, { alwaysEjectOneHost: true });
    for (const h of one.hosts) codes(h, 500, 500, 500, 500, 500);
    expect(one.hosts.map((h) => one.detector.isEjected(h))).toEqual([true, false]);
  });
});

describe('ejection time', () => {
  test('base × the number of ejections in a row, capped at max, checked at each interval; it decays while the host behaves', () => {
    const r = rig(2, { maxEjectionPercent: 50, baseEjectionTimeMs: 1000, maxEjectionTimeMs: 2500, intervalMs: 100 });
    const a = r.hosts[0]!;
    const ejectAt = (t: number): void => {
      r.clock.now = t;
      codes(a, 500, 500, 500, 500, 500);
      expect(r.detector.isEjected(a)).toBe(true);
    };
    const backAfter = (t0: number): number => {
      for (let t = t0; t < t0 + 10_000; t += 100) {
        r.clock.now = t;
        r.detector.sweep();
        if (!r.detector.isEjected(a)) return t - t0;
      }
      throw new Error('never came back');
    };
    ejectAt(0);
    expect(backAfter(0)).toBe(1000);
    ejectAt(1000);
    expect(backAfter(1000)).toBe(2000);
    ejectAt(3000);
    expect(backAfter(3000)).toBe(2500); // 3 × 1000 capped at max_ejection_time
    ejectAt(5500);
    expect(backAfter(5500)).toBe(2500);
    expect(r.detector.monitor(a)!.numEjections).toBe(4);
    // Well-behaved for a while: the multiplier falls one per interval, down to 0, so the next ejection is short again.
    for (let t = 8100; t <= 9000; t += 100) {
      r.clock.now = t;
      r.detector.sweep();
    }
    expect(r.detector.monitor(a)!.ejectTimeBackoff).toBe(0);
    ejectAt(9000);
    expect(backAfter(9000)).toBe(1000);
  });

  test('max_ejection_time_jitter adds up to its value, drawn once per ejection', () => {
    const r = rig(2, { maxEjectionPercent: 50, baseEjectionTimeMs: 1000, maxEjectionTimeJitterMs: 400 }, () => 0.5);
    codes(r.hosts[0]!, 500, 500, 500, 500, 500);
    expect(r.detector.monitor(r.hosts[0]!)!.jitterMs).toBe(200);
    r.clock.now = 1199;
    r.detector.sweep();
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(true);
    r.clock.now = 1200;
    r.detector.sweep();
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false);
  });

  test('coming back clears the consecutive counts, so one more error does not eject again', () => {
    const r = rig(2, { maxEjectionPercent: 50, baseEjectionTimeMs: 1000 });
    const a = r.hosts[0]!;
    codes(a, 500, 500, 500, 500, 500);
    r.clock.now = 1000;
    r.detector.sweep();
    codes(a, 500, 500, 500, 500);
    expect(r.detector.isEjected(a)).toBe(false);
    expect(r.stat('ejections_active')).toBe(0);
  });

  test('a passing active health check brings the host back, unless successful_active_health_check_uneject_host is false', () => {
    const r = rig(2, { maxEjectionPercent: 50 });
    codes(r.hosts[0]!, 500, 500, 500, 500, 500);
    r.detector.healthCheckPassed(r.hosts[0]!);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false);
    const kept = rig(2, { maxEjectionPercent: 50, successfulActiveHealthCheckUnejectHost: false });
    codes(kept.hosts[0]!, 500, 500, 500, 500, 500);
    kept.detector.healthCheckPassed(kept.hosts[0]!);
    expect(kept.detector.isEjected(kept.hosts[0]!)).toBe(true);
  });
});

describe('success rate and failure percentage, at the interval', () => {
  /** One interval of traffic: `ok` successes out of `total` per host, then the sweep that reads it. */
  function interval(r: Rig, perHost: Array<[ok: number, total: number]>): void {
    perHost.forEach(([ok, total], i) => {
      for (let k = 0; k < total; k++) r.hosts[i]!.outlier!.putHttpResponseCode(k < ok ? 200 : 500);
    });
    r.detector.sweep();
  }

  test('Envoy\'s threshold: mean − 1.9 × stdev (50, 100, 100, 100, 100 → mean 90, threshold 52)', () => {
    const v = successRateThreshold([50, 100, 100, 100, 100], 1.9);
    expect(v.average).toBe(90);
    expect(v.threshold).toBeCloseTo(52, 10);
  });

  test('a host well below the others is ejected; the figures show on the detector', () => {
    const r = rig(5, { maxEjectionPercent: 20, consecutive5xx: 1000 });
    interval(r, [[50, 100], [100, 100], [100, 100], [100, 100], [100, 100]]);
    expect(r.hosts.map((h) => r.detector.isEjected(h))).toEqual([true, false, false, false, false]);
    expect(r.stat('ejections_detected_success_rate')).toBe(1);
    expect(r.stat('ejections_enforced_success_rate')).toBe(1);
    expect(r.detector.verdict('external').average).toBe(90);
    expect(r.detector.monitor(r.hosts[1]!)!.successRate).toBe(100);
  });

  test('not enough volume, or not enough hosts with it: nothing is computed', () => {
    const low = rig(5, { maxEjectionPercent: 20, consecutive5xx: 1000 });
    interval(low, [[50, 99], [100, 100], [100, 100], [100, 100], [100, 100]]);
    expect(low.detector.verdict('external').average).toBe(-1); // 4 hosts with volume < success_rate_minimum_hosts
    expect(low.stat('ejections_detected_success_rate')).toBe(0);
    // 99 requests are enough for failure percentage (50), so /clusters shows the host's rate all the same.
    expect(low.detector.monitor(low.hosts[0]!)!.successRate).toBeCloseTo(5000 / 99, 10);
  });

  test('failure percentage: a host failing at least the threshold is ejected when enforced', () => {
    const r = rig(5, { maxEjectionPercent: 20, consecutive5xx: 1000, enforcingFailurePercentage: 100 });
    interval(r, [[10, 60], [60, 60], [60, 60], [60, 60], [60, 60]]);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(false); // 83 % failed: under the 85 % threshold
    expect(r.stat('ejections_detected_failure_percentage')).toBe(0);
    interval(r, [[5, 60], [60, 60], [60, 60], [60, 60], [60, 60]]);
    expect(r.detector.isEjected(r.hosts[0]!)).toBe(true);
    expect(r.stat('ejections_enforced_failure_percentage')).toBe(1);
    expect(r.stat('ejections_detected_success_rate')).toBe(0); // 60 requests: under success_rate_request_volume
  });
});

describe('hosts come and go', () => {
  test('a removed ejected host takes its ejection with it; stop() gives back the rest', () => {
    const r = rig(4, { maxEjectionPercent: 50 });
    codes(r.hosts[0]!, 500, 500, 500, 500, 500);
    codes(r.hosts[1]!, 500, 500, 500, 500, 500);
    expect(r.stat('ejections_active')).toBe(2);
    r.detector.setHosts(r.hosts.slice(1));
    expect(r.stat('ejections_active')).toBe(1);
    expect(r.hosts[0]!.outlier).toBeNull();
    r.detector.stop();
    expect(r.stat('ejections_active')).toBe(0);
    expect(r.hosts[1]!.outlier).toBeNull();
  });
});

describe('panic threshold (one priority level)', () => {
  test.each([
    // healthy, total, threshold, panic
    [0, 1, 50, true], [0, 2, 50, true], [1, 2, 50, false], [1, 3, 50, true], [2, 3, 50, false], [4, 10, 50, true], [5, 10, 50, false],
    [0, 2, 0, false], // 0 turns panic mode off
    [3, 4, 100, false], // 75 % × 1.4 ≥ 100 %: a level with enough capacity never panics
    [7, 10, 100, true],
    [0, 0, 50, false],
  ])('%i of %i healthy, threshold %i %%: panic %s', (healthy, total, threshold, panic) => {
    expect(inPanic(healthy, total, threshold)).toBe(panic);
  });
});
