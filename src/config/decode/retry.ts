import type { AttemptHeaders, HeaderMatcher, RetryBackOff, RetryPolicy } from '../model';
import { type Ctx, type Pb, at, atIndex, durationMs, each, fail, wrapped } from './common';
import { decodeHeaderMatcher } from './header-matcher';

// Envoy's RetryPolicy (route and virtual host) and the virtual host's attempt-count switches.

/** Conditions retry_on may name: x-envoy-retry-on's and x-envoy-retry-grpc-on's, as Envoy reads them. */
const RETRY_CONDITIONS = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

const PREVIOUS_HOSTS_NAME = 'envoy.retry_host_predicates.previous_hosts';
const PREVIOUS_HOSTS_TYPE = 'envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';

export function decodeRetryPolicy(r: Pb, ctx: Ctx): RetryPolicy {
  const retryOn = String(r.retry_on ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const c of retryOn) {
    // Only an HTTP/3 upstream can fail that way, and sidemirror has none.
    if (c === 'http3-post-connect-failure') fail(at(ctx, 'retry_on'), `"${c}" is not supported by sidemirror (no HTTP/3 upstreams)`);
    else if (!RETRY_CONDITIONS.has(c)) fail(at(ctx, 'retry_on'), `unknown retry condition "${c}"`);
  }
  const codes = ((r.retriable_status_codes as number[] | undefined) ?? []).map(Number);
  codes.forEach((code, i) => {
    if (!(code >= 100 && code <= 599)) fail(atIndex(ctx, 'retriable_status_codes', i), `status ${code} must be in [100, 599]`);
  });
  return {
    retryOn,
    numRetries: wrapped(r.num_retries, 1),
    perTryTimeoutMs: durationMs(r.per_try_timeout as Pb | undefined, 0),
    perTryIdleTimeoutMs: durationMs(r.per_try_idle_timeout as Pb | undefined, 0),
    retriableStatusCodes: codes,
    retriableHeaders: each(ctx, r, 'retriable_headers', decodeHeaderMatcher) as HeaderMatcher[],
    retriableRequestHeaders: each(ctx, r, 'retriable_request_headers', decodeHeaderMatcher) as HeaderMatcher[],
    backOff: r.retry_back_off ? decodeBackOff(r.retry_back_off as Pb, at(ctx, 'retry_back_off')) : null,
    previousHosts: hostPredicates(r, ctx),
    // Envoy: 0 (unset) leaves its default of one more pick.
    hostSelectionRetryMaxAttempts: Number(r.host_selection_retry_max_attempts ?? 0) || 1,
  };
}

/** Envoy rounds sub-millisecond intervals up to 1 ms; a max below the base is an error. */
function decodeBackOff(b: Pb, ctx: Ctx): RetryBackOff {
  const base = b.base_interval as Pb | undefined;
  if (!base || (Number(base.seconds ?? 0) <= 0 && Number(base.nanos ?? 0) <= 0)) fail(at(ctx, 'base_interval'), 'base_interval is required and must be greater than 0');
  const baseIntervalMs = Math.max(1, durationMs(base, 25));
  const max = b.max_interval as Pb | undefined;
  if (max && Number(max.seconds ?? 0) <= 0 && Number(max.nanos ?? 0) <= 0) fail(at(ctx, 'max_interval'), 'max_interval must be greater than 0');
  const maxIntervalMs = max ? Math.max(1, durationMs(max, 0)) : baseIntervalMs * 10;
  if (maxIntervalMs < baseIntervalMs) fail(at(ctx, 'max_interval'), 'max_interval must be greater than or equal to the base_interval');
  return { baseIntervalMs, maxIntervalMs };
}

/** retry_host_predicate: previous_hosts is the one sidemirror has (its name or its typed_config). */
function hostPredicates(r: Pb, ctx: Ctx): boolean {
  let previous = false;
  each(ctx, r, 'retry_host_predicate', (p, pctx) => {
    const typed = p.typed_config as Pb | undefined;
    const typeName = typed ? String(typed.type_url ?? '').slice(String(typed.type_url ?? '').lastIndexOf('/') + 1) : '';
    if (typeName === PREVIOUS_HOSTS_TYPE || (!typed && String(p.name ?? '') === PREVIOUS_HOSTS_NAME)) previous = true;
    else if (typed) fail(at(pctx, 'typed_config'), `${typeName} is not supported by sidemirror (only ${PREVIOUS_HOSTS_NAME})`);
    else fail(at(pctx, 'name'), `"${String(p.name ?? '')}" is not supported by sidemirror (only ${PREVIOUS_HOSTS_NAME})`);
  });
  return previous;
}

/** per_request_buffer_limit_bytes of a route or virtual host (null: unset). */
export function bufferLimit(obj: Pb): number | null {
  return obj.per_request_buffer_limit_bytes === undefined ? null : wrapped(obj.per_request_buffer_limit_bytes as Pb, 0);
}

export function attemptHeaders(vh: Pb): AttemptHeaders {
  return {
    inRequest: Boolean(vh.include_request_attempt_count),
    inResponse: Boolean(vh.include_attempt_count_in_response),
    timeoutRetry: Boolean(vh.include_is_timeout_retry_header),
  };
}
