import type { RetryPolicy } from '../config/model';
import type { HeaderMap } from '../http/headers';
import { type HeaderLookup, type Predicate, compileHeaderMatcher } from '../router/matchers';
import { JitteredBackOff } from './backoff';
import type { UpstreamCluster } from './cluster-manager';
import type { Host } from './host';
import {
  type AttemptFailure,
  type ResponseView,
  parseConfigRetryOn,
  parseRetryGrpcOn,
  parseRetryOn,
  wouldRetryFailure,
  wouldRetryResponse,
} from './retry-conditions';

/** Envoy's default base back-off (upstream.base_retry_backoff_ms); the maximum is ten times the base. */
export const DEFAULT_BASE_INTERVAL_MS = 25;

/** A retry policy with its matchers compiled, once per policy object (a snapshot's are immutable). */
interface CompiledPolicy {
  readonly mask: number;
  readonly retriableHeaders: ReadonlyArray<Predicate<HeaderLookup>>;
  readonly requestHeaders: ReadonlyArray<Predicate<HeaderLookup>>;
}

const compiled = new WeakMap<RetryPolicy, CompiledPolicy>();

function compile(policy: RetryPolicy): CompiledPolicy {
  let c = compiled.get(policy);
  if (!c) {
    c = {
      mask: parseConfigRetryOn(policy.retryOn),
      retriableHeaders: policy.retriableHeaders.map(compileHeaderMatcher),
      requestHeaders: policy.retriableRequestHeaders.map(compileHeaderMatcher),
    };
    compiled.set(policy, c);
  }
  return c;
}

/** The router headers a retry state reads and removes, as Envoy's RetryStateImpl::create does. */
const CONSUMED = ['x-envoy-retry-on', 'x-envoy-retry-grpc-on', 'x-envoy-max-retries', 'x-envoy-retriable-status-codes',
  'x-envoy-retriable-header-names', 'x-envoy-hedge-on-per-try-timeout'];

export type RetryVerdict =
  | { readonly retry: true; readonly delayMs: number }
  /** no: not retriable; limit_exceeded: retries used up; overflow: the max_retries circuit breaker is full. */
  | { readonly retry: false; readonly reason: 'no' | 'limit_exceeded' | 'overflow' };

const NO: RetryVerdict = { retry: false, reason: 'no' };
const LIMIT_EXCEEDED: RetryVerdict = { retry: false, reason: 'limit_exceeded' };
const OVERFLOW: RetryVerdict = { retry: false, reason: 'overflow' };

function joined(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * One request's retries, as Envoy's RetryStateImpl keeps them: the policy merged with the
 * request's x-envoy-retry-* headers (they reach here only from internal clients: the connection
 * manager strips them from the others), the retries left, the back-off, and the cluster's
 * max_retries circuit breaker, held from a retry's decision until its attempt is answered.
 */
export class RetryState {
  #retriesLeft: number;
  /** A retry was decided and holds a max_retries slot until the next decision (Envoy's armed callback). */
  #armed = false;
  #abandoned = false;
  readonly #backOff: JitteredBackOff;
  readonly #tried: Set<Host> | null;
  /** How many more picks a host the predicate turns down earns (host_selection_retry_max_attempts). */
  readonly hostSelectionRetries: number;

  private constructor(
    private readonly cluster: UpstreamCluster,
    private readonly mask: number,
    numRetries: number,
    private readonly codes: readonly number[],
    private readonly headers: ReadonlyArray<Predicate<HeaderLookup>>,
    policy: RetryPolicy | null,
  ) {
    this.#retriesLeft = numRetries;
    const base = policy?.backOff?.baseIntervalMs ?? DEFAULT_BASE_INTERVAL_MS;
    this.#backOff = new JitteredBackOff(base, policy?.backOff?.maxIntervalMs ?? base * 10);
    this.#tried = policy?.previousHosts ? new Set() : null;
    this.hostSelectionRetries = policy?.hostSelectionRetryMaxAttempts ?? 1;
  }

  /**
   * The request's retry state, or null when nothing asks for retries. Always removes the
   * x-envoy-retry-* headers from `headers`, so the upstream never sees them. `request` reads the
   * request's headers (pseudo-headers too) for retriable_request_headers.
   */
  static create(policy: RetryPolicy | null, headers: HeaderMap, request: HeaderLookup, cluster: UpstreamCluster): RetryState | null {
    const retryOn = joined(headers['x-envoy-retry-on']);
    const grpcOn = joined(headers['x-envoy-retry-grpc-on']);
    const maxRetries = joined(headers['x-envoy-max-retries']);
    const codesHeader = joined(headers['x-envoy-retriable-status-codes']);
    const namesHeader = joined(headers['x-envoy-retriable-header-names']);
    for (const name of CONSUMED) if (headers[name] !== undefined) delete headers[name];
    const c = policy ? compile(policy) : null;
    if (retryOn === undefined && grpcOn === undefined && (c === null || c.mask === 0)) return null;

    let mask = (c?.mask ?? 0) | (retryOn === undefined ? 0 : parseRetryOn(retryOn)) | (grpcOn === undefined ? 0 : parseRetryGrpcOn(grpcOn));
    // A route that limits retries to some requests: the others are never retried.
    if (c !== null && c.requestHeaders.length > 0 && !c.requestHeaders.some((m) => m(request))) mask = 0;
    let numRetries = policy?.numRetries ?? 1;
    if (mask !== 0 && maxRetries !== undefined && /^\s*\d+\s*$/.test(maxRetries)) numRetries = Number(maxRetries.trim());
    const codes = [...(policy?.retriableStatusCodes ?? [])];
    for (const raw of codesHeader?.split(',') ?? []) if (/^\s*\d+\s*$/.test(raw)) codes.push(Number(raw.trim()));
    const matchers = [...(c?.retriableHeaders ?? [])];
    for (const raw of namesHeader?.split(',') ?? []) {
      const name = raw.trim().toLowerCase();
      if (name) matchers.push((lookup) => lookup(name) !== undefined);
    }
    return new RetryState(cluster, mask, numRetries, codes, matchers, policy);
  }

  /** Retries are possible: some condition is on, and the body was not too large to keep. */
  get enabled(): boolean {
    return this.mask !== 0 && !this.#abandoned;
  }

  /** Should this response be retried rather than sent on? */
  onResponse(res: ResponseView): RetryVerdict {
    if (this.#abandoned) return NO;
    return this.#decide(wouldRetryResponse(this.mask, res, this.codes, this.headers));
  }

  /** Should this attempt, which failed before any response, be retried? */
  onFailure(failure: AttemptFailure): RetryVerdict {
    if (this.#abandoned) return NO;
    return this.#decide(wouldRetryFailure(this.mask, failure));
  }

  /** Envoy's RetryStateImpl::shouldRetry. */
  #decide(would: boolean): RetryVerdict {
    const stats = this.cluster.stats.retry;
    // The retried attempt came back with nothing to retry: that retry succeeded.
    if (this.#armed && !would) stats.success.inc();
    this.#release();
    if (!would) return NO;
    if (this.#retriesLeft === 0) {
      stats.limitExceeded.inc();
      return LIMIT_EXCEEDED;
    }
    this.#retriesLeft--;
    const cluster = this.cluster;
    if (cluster.retriesActive >= cluster.config.circuitBreakers.maxRetries) {
      stats.overflow.inc();
      return OVERFLOW;
    }
    this.#armed = true;
    cluster.retriesActive++;
    this.#openGauge();
    stats.retry.inc();
    stats.backoffExponential.inc();
    return { retry: true, delayMs: this.#backOff.nextMs() };
  }

  /** The request body grew past the buffer limit: no retry from now on (Envoy's retry_or_shadow_abandoned). */
  abandon(): void {
    if (this.#abandoned) return;
    this.#abandoned = true;
    this.cluster.stats.retry.abandoned.inc();
    this.#release();
  }

  /** The request is over, answered or not: a retry still under way gives its max_retries slot back. */
  done(): void {
    this.#release();
  }

  /** An attempt went to `host` (for envoy.retry_host_predicates.previous_hosts). */
  attempted(host: Host): void {
    this.#tried?.add(host);
  }

  /** The host predicate, or null without one: true turns `host` down for this attempt. */
  get rejects(): ((host: Host) => boolean) | null {
    const tried = this.#tried;
    return tried === null ? null : (host) => tried.has(host);
  }

  #release(): void {
    if (!this.#armed) return;
    this.#armed = false;
    this.cluster.retriesActive--;
    this.#openGauge();
  }

  #openGauge(): void {
    const c = this.cluster;
    c.stats.retry.open.set(c.retriesActive >= c.config.circuitBreakers.maxRetries ? 1 : 0);
  }
}
