import { type Ctx, type Pb, at, atKey, each, fail, wrapped } from '../../config/decode/common';
import { decodeHeaderMatcher } from '../../config/decode/header-matcher';
import type { HeaderMatcher } from '../../config/model';
import { type HeaderLookup, type Predicate, compileHeaderMatcher } from '../../router/matchers';
import { pseudoOrHeader } from '../request-head';
import type { FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner, LocalReply } from './types';

// envoy.filters.http.health_check: answers the load balancer's health check itself (or marks it
// and lets it through, in pass-through mode), failing it when a named cluster has too few
// healthy hosts or the proxy is draining.

const HEALTH_CHECK = 'envoy.extensions.filters.http.health_check.v3.HealthCheck';

interface HealthCheckSettings {
  readonly passThrough: boolean;
  readonly headers: readonly HeaderMatcher[];
  /** Cluster name → the lowest healthy share (percent) for the check to pass. */
  readonly clusterMinHealthy: ReadonlyMap<string, number>;
}

function decodeHealthCheck(h: Pb, ctx: Ctx): HealthCheckSettings {
  if (h.pass_through_mode === undefined) fail(at(ctx, 'pass_through_mode'), 'pass_through_mode is required');
  const clusterMinHealthy = new Map<string, number>();
  for (const [name, p] of Object.entries((h.cluster_min_healthy_percentages as Record<string, Pb> | undefined) ?? {})) {
    const value = Number((p as Pb).value ?? 0);
    if (!(value >= 0 && value <= 100)) fail(at(atKey(at(ctx, 'cluster_min_healthy_percentages'), name), 'value'), 'must be between 0 and 100');
    clusterMinHealthy.set(name, value);
  }
  // As in Envoy, no header matchers make every request a health check.
  const headers = each(ctx, h, 'headers', decodeHeaderMatcher);
  return { passThrough: wrapped(h.pass_through_mode as Pb | undefined, false), headers, clusterMinHealthy };
}

class HealthCheckRunner implements HttpFilterRunner<never> {
  readonly #matchers: ReadonlyArray<Predicate<HeaderLookup>>;

  constructor(private readonly s: HealthCheckSettings, private readonly env: FilterEnv) {
    this.#matchers = s.headers.map(compileHeaderMatcher);
  }

  start(request: FilterRequest): FilterStream | null {
    const lookup: HeaderLookup = (name) => pseudoOrHeader(name, request.headers, request.authority, request.path, request.method, request.scheme);
    if (!this.#matchers.every((m) => m(lookup))) return null;
    request.marks.healthCheck = true;
    if (this.s.passThrough) return null;
    return { decodeHeaders: () => this.#answer() };
  }

  #answer(): LocalReply {
    if (this.env.draining()) return { status: 503, details: 'health_check_failed', headers: { 'x-envoy-immediate-health-check-fail': 'true' } };
    for (const [name, min] of this.s.clusterMinHealthy) {
      const cluster = this.env.clusters.get(name);
      const all = cluster?.hosts.length ?? 0;
      const healthy = cluster?.healthyHosts.length ?? 0;
      // Envoy: an unknown or empty cluster fails the check, unless its minimum is 0.
      if (min > 0 && (all === 0 || (100 * healthy) / all < min)) return { status: 503, details: 'health_check_failed_cluster_unhealthy' };
    }
    return { status: 200, details: 'health_check_ok' };
  }
}

export const healthCheckFilter: HttpFilterKind<HealthCheckSettings, never> = {
  configType: HEALTH_CHECK,
  decode: decodeHealthCheck,
  build: (settings, env) => new HealthCheckRunner(settings, env),
};
