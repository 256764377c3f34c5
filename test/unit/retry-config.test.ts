import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { ForwardAction } from '../../src/config/model';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { hcmOf } from '../harness/model';

// RetryPolicy as the decoder reads it: Envoy's defaults, and every error by its path in one report.

type Json = Record<string, unknown>;

const VHOST = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]';

function text(routes: Json[], vhost: Json = {}): string {
  return bootstrap({ listeners: [listener(routeConfig(routes, vhost))], clusters: [cluster('primary', [8081])] });
}

function issuesOf(doc: string): readonly ConfigIssue[] {
  try {
    loadBootstrapText(doc);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

function vhostOf(doc: string) {
  return hcmOf(loadBootstrapText(doc).bootstrap.listeners[0]!.filterChains[0]).routeConfig!.virtualHosts[0]!;
}

test("Envoy's defaults: one retry, 25 ms back-off up to ten times that, one more host pick, no per-try timeout", () => {
  const vh = vhostOf(text([route('/', 'primary', { retry_policy: { retry_on: '5xx' } })]));
  const policy = (vh.routes[0]!.action as ForwardAction).retryPolicy!;
  expect(policy).toEqual({
    retryOn: ['5xx'], numRetries: 1, perTryTimeoutMs: 0, perTryIdleTimeoutMs: 0, retriableStatusCodes: [], retriableHeaders: [],
    retriableRequestHeaders: [], backOff: null, previousHosts: false, hostSelectionRetryMaxAttempts: 1,
  });
  expect(vh.retryPolicy).toBeNull();
  expect(vh.perRequestBufferLimitBytes).toBeNull();
  expect(vh.attemptHeaders).toEqual({ inRequest: false, inResponse: false, timeoutRetry: false });
});

test('every field decoded: durations, back-off (max defaults to 10× base; sub-ms rounds up to 1 ms), matchers, previous_hosts, limits', () => {
  const vh = vhostOf(text([{
    ...route('/', 'primary', { retry_policy: {
      retry_on: ' 5xx , reset,unavailable ', num_retries: 4, per_try_timeout: '0.25s', per_try_idle_timeout: '1s',
      retriable_status_codes: [409, 418], retriable_headers: [{ name: 'X-Retry', string_match: { exact: 'yes' } }],
      retriable_request_headers: [{ name: ':method', string_match: { exact: 'GET' } }],
      retry_back_off: { base_interval: '0.0001s' }, host_selection_retry_max_attempts: 5,
      retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts' }],
    } }),
    per_request_buffer_limit_bytes: 4096,
  }], {
    retry_policy: { retry_on: 'gateway-error', retry_back_off: { base_interval: '0.1s', max_interval: '2s' } },
    per_request_buffer_limit_bytes: 8192, include_request_attempt_count: true, include_attempt_count_in_response: true, include_is_timeout_retry_header: true,
  }));
  const r = vh.routes[0]!;
  const policy = (r.action as ForwardAction).retryPolicy!;
  expect(policy.retryOn).toEqual(['5xx', 'reset', 'unavailable']);
  expect(policy.numRetries).toBe(4);
  expect(policy.perTryTimeoutMs).toBe(250);
  expect(policy.perTryIdleTimeoutMs).toBe(1000);
  expect(policy.retriableStatusCodes).toEqual([409, 418]);
  expect(policy.retriableHeaders).toEqual([{ name: 'x-retry', invert: false, treatMissingAsEmpty: false, match: { kind: 'string', matcher: { kind: 'exact', value: 'yes', ignoreCase: false } } }]);
  expect(policy.retriableRequestHeaders[0]!.name).toBe(':method');
  expect(policy.backOff).toEqual({ baseIntervalMs: 1, maxIntervalMs: 10 });
  expect(policy.previousHosts).toBe(true);
  expect(policy.hostSelectionRetryMaxAttempts).toBe(5);
  expect(r.perRequestBufferLimitBytes).toBe(4096);
  expect(vh.retryPolicy!.backOff).toEqual({ baseIntervalMs: 100, maxIntervalMs: 2000 });
  expect(vh.perRequestBufferLimitBytes).toBe(8192);
  expect(vh.attemptHeaders).toEqual({ inRequest: true, inResponse: true, timeoutRetry: true });
});

test('previous_hosts by its typed_config alone', () => {
  const vh = vhostOf(text([route('/', 'primary', { retry_policy: { retry_on: 'reset', retry_host_predicate: [{
    name: 'anything', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' },
  }] } })]));
  expect((vh.routes[0]!.action as ForwardAction).retryPolicy!.previousHosts).toBe(true);
});

test('every retry error, by path, in one report; what sidemirror lacks is refused by name', () => {
  const RP = `${VHOST}.routes[0].route.retry_policy`;
  const issues = issuesOf(text([
    route('/', 'primary', { retry_policy: {
      retry_on: '5xx,sometimes,http3-post-connect-failure',
      retriable_status_codes: [99, 503],
      retry_back_off: { max_interval: '1s' },
      retry_host_predicate: [
        { name: 'envoy.retry_host_predicates.omit_canary_hosts' },
        { name: 'p', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } },
      ],
      retry_priority: { name: 'envoy.retry_priorities.previous_priorities' },
      rate_limited_retry_back_off: { reset_headers: [{ name: 'retry-after' }] },
    } }),
    route('/b', 'primary', { retry_policy: { retry_on: '5xx', retry_back_off: { base_interval: '2s', max_interval: '1s' } }, hedge_policy: { hedge_on_per_try_timeout: true } }),
  ], { retry_policy_typed_config: { '@type': 'type.googleapis.com/google.protobuf.Empty' } }));
  expect(issues).toEqual(expect.arrayContaining([
    { path: `${RP}.retry_on`, message: 'unknown retry condition "sometimes"' },
    { path: `${RP}.retry_on`, message: '"http3-post-connect-failure" is not supported by sidemirror (no HTTP/3 upstreams)' },
    { path: `${RP}.retriable_status_codes[0]`, message: 'status 99 must be in [100, 599]' },
    { path: `${RP}.retry_back_off.base_interval`, message: 'base_interval is required and must be greater than 0' },
    { path: `${RP}.retry_host_predicate[0].name`, message: '"envoy.retry_host_predicates.omit_canary_hosts" is not supported by sidemirror (only envoy.retry_host_predicates.previous_hosts)' },
    { path: `${RP}.retry_priority`, message: 'not supported by sidemirror' },
    { path: `${RP}.rate_limited_retry_back_off`, message: 'not supported by sidemirror' },
    { path: `${VHOST}.routes[1].route.retry_policy.retry_back_off.max_interval`, message: 'max_interval must be greater than or equal to the base_interval' },
    { path: `${VHOST}.routes[1].route.hedge_policy`, message: 'not supported by sidemirror' },
    { path: `${VHOST}.retry_policy_typed_config`, message: 'not supported by sidemirror' },
  ]));
  expect(issues).toHaveLength(10);
});
