import type { AttemptHeaders, ForwardAction } from '../config/model';
import { type HeaderMap, firstValue } from '../http/headers';
import type { HeaderLookup } from '../router/matchers';
import type { CompiledRoute } from '../router/route-table';
import { rewriteHost } from '../router/router';
import type { UpstreamCluster } from './cluster-manager';
import type { Host } from './host';
import { pickHost } from './host-selection';
import type { HashKey } from './load-balancer';
import { RetryState } from './retry-state';

/** What the connection manager knows of a request when it plans its attempts. */
export interface RetryPlanInput {
  readonly route: CompiledRoute;
  readonly action: ForwardAction;
  readonly cluster: UpstreamCluster;
  /** The upstream request's headers, edited in place (x-envoy-retry-* consumed, attempt headers set). */
  readonly headers: HeaderMap;
  /** The request's headers with pseudo-headers, for retriable_request_headers. */
  readonly lookup: HeaderLookup;
  readonly hashKey: HashKey;
  /** The weighted cluster's host_rewrite_literal, which wins over the route's. */
  readonly weightedHostLiteral: string | null;
  /** The route timeout (0: none). */
  readonly routeTimeoutMs: number;
  readonly suppressEnvoyHeaders: boolean;
  /** The listener's buffer limit (per_connection_buffer_limit_bytes), when no route or virtual host sets one. */
  readonly listenerBufferLimitBytes: number;
}

const NO_ATTEMPT_HEADERS: AttemptHeaders = { inRequest: false, inResponse: false, timeoutRetry: false };

/**
 * How a request's upstream attempts go, as Envoy's router decides them: its retry state (the
 * route's retry_policy, else the virtual host's, merged with the request's x-envoy-retry-*
 * headers), per-try timeouts, the body kept for replay, and the attempt-count headers. Null when
 * none of that applies, so a plain request pays for nothing.
 */
export class RetryPlan {
  private constructor(
    private readonly input: RetryPlanInput,
    readonly state: RetryState | null,
    /** 0: none. */
    readonly perTryTimeoutMs: number,
    readonly perTryIdleTimeoutMs: number,
    readonly bufferLimitBytes: number,
    private readonly attemptHeaders: AttemptHeaders,
  ) {}

  static create(input: RetryPlanInput): RetryPlan | null {
    const { route, action, headers } = input;
    const policy = action.retryPolicy ?? route.vhost.retryPolicy;
    const state = RetryState.create(policy, headers, input.lookup, input.cluster);
    const perTry = perTryTimeout(policy?.perTryTimeoutMs ?? 0, headers, input.routeTimeoutMs);
    const idle = policy?.perTryIdleTimeoutMs ?? 0;
    const attempts = route.vhost.attemptHeaders ?? NO_ATTEMPT_HEADERS;
    if (state === null && perTry === 0 && idle === 0 && !attempts.inRequest && !attempts.inResponse) return null;
    const limit = route.route.perRequestBufferLimitBytes ?? route.vhost.perRequestBufferLimitBytes ?? input.listenerBufferLimitBytes;
    const plan = new RetryPlan(input, state, perTry, idle, limit, attempts);
    plan.#attemptHeaders(1, null, 0);
    return plan;
  }

  /** x-envoy-attempt-count goes on the response (include_attempt_count_in_response). */
  get attemptCountInResponse(): boolean {
    return this.attemptHeaders.inResponse;
  }

  /**
   * The host for attempt `attempt` (2 for the first retry), its request headers set: the attempt
   * count, whether a timeout caused it, the time left, the host rewrite. Null: no host is healthy.
   * `elapsedMs`: since the downstream request completed (0 while it has not).
   */
  nextAttempt(attempt: number, timeoutRetry: boolean, elapsedMs: number): Host | null {
    const { cluster, hashKey, action, headers, weightedHostLiteral } = this.input;
    const host = pickHost(cluster, hashKey, this.state?.rejects ?? null, this.state?.hostSelectionRetries ?? 0);
    if (host === null) return null;
    rewriteHost(action, headers, host, weightedHostLiteral);
    this.#attemptHeaders(attempt, timeoutRetry, elapsedMs);
    return host;
  }

  #attemptHeaders(attempt: number, timeoutRetry: boolean | null, elapsedMs: number): void {
    const { headers, routeTimeoutMs, suppressEnvoyHeaders } = this.input;
    if (this.attemptHeaders.inRequest) headers['x-envoy-attempt-count'] = String(attempt);
    if (timeoutRetry !== null && this.attemptHeaders.timeoutRetry) headers['x-envoy-is-timeout-retry'] = timeoutRetry ? 'true' : 'false';
    if (suppressEnvoyHeaders || (this.perTryTimeoutMs === 0 && attempt === 1)) return;
    // Envoy's setTimeoutHeaders: the per-try timeout, or what is left of the route's.
    let expected = this.perTryTimeoutMs || routeTimeoutMs;
    if (expected > 0 && routeTimeoutMs > 0) expected = elapsedMs >= routeTimeoutMs ? 1 : Math.min(expected, routeTimeoutMs - elapsedMs);
    if (expected > 0) headers['x-envoy-expected-rq-timeout-ms'] = String(expected);
  }
}

/**
 * The policy's per_try_timeout, or an internal client's x-envoy-upstream-rq-per-try-timeout-ms
 * (consumed either way); ignored when not below the route timeout, as Envoy does.
 */
function perTryTimeout(fromPolicy: number, headers: HeaderMap, routeTimeoutMs: number): number {
  let ms = fromPolicy;
  const raw = firstValue(headers['x-envoy-upstream-rq-per-try-timeout-ms']);
  if (raw !== undefined) {
    delete headers['x-envoy-upstream-rq-per-try-timeout-ms'];
    if (/^\s*\d+\s*$/.test(raw)) ms = Number(raw.trim());
  }
  return routeTimeoutMs > 0 && ms >= routeTimeoutMs ? 0 : ms;
}
