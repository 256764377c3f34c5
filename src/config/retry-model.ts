import type { HeaderMatcher } from './matcher-model';

// Envoy's RetryPolicy and the virtual host's retry-related switches, as the plain model holds them.
// Durations in milliseconds; 0 means "none".

/** Envoy's RetryPolicy (route or virtual host; the route's replaces the virtual host's). */
export interface RetryPolicy {
  /** retry_on's conditions as written (HTTP and gRPC ones), each known to the decoder. */
  readonly retryOn: readonly string[];
  /** num_retries (default 1). */
  readonly numRetries: number;
  readonly perTryTimeoutMs: number;
  readonly perTryIdleTimeoutMs: number;
  readonly retriableStatusCodes: readonly number[];
  /** Response headers that make a response retriable under `retriable-headers`. */
  readonly retriableHeaders: readonly HeaderMatcher[];
  /** When not empty, a request matching none of these is never retried. */
  readonly retriableRequestHeaders: readonly HeaderMatcher[];
  /** retry_back_off; null: Envoy's default (25 ms base, 10 times that at most). */
  readonly backOff: RetryBackOff | null;
  /** retry_host_predicate holds envoy.retry_host_predicates.previous_hosts. */
  readonly previousHosts: boolean;
  /** host_selection_retry_max_attempts: how many more picks a rejected host earns (Envoy's default 1). */
  readonly hostSelectionRetryMaxAttempts: number;
}

export interface RetryBackOff {
  readonly baseIntervalMs: number;
  readonly maxIntervalMs: number;
}

/** The virtual host's attempt headers (Envoy's include_* switches). */
export interface AttemptHeaders {
  /** x-envoy-attempt-count on every upstream request. */
  readonly inRequest: boolean;
  /** x-envoy-attempt-count on the response to the client. */
  readonly inResponse: boolean;
  /** x-envoy-is-timeout-retry on retries. */
  readonly timeoutRetry: boolean;
}
