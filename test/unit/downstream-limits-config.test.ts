// Envoy's downstream timeouts and limits, decoded: Envoy's defaults when unset, values reaching
// the model, and what sidemirror does not enforce refused by path rather than ignored.
import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { ForwardAction } from '../../src/config/model';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { hcmOf } from '../harness/model';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const DOWNSTREAM_CX = 'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig';

function doc(hcm: Json = {}, action: Json = {}, extra: Json = {}, listenerExtra: Json = {}): string {
  const l = listener(routeConfig([route('/', 'primary', action)]), { hcm }) as Json;
  return bootstrap({ listeners: [{ ...l, ...listenerExtra }], clusters: [cluster('primary', [8081])], extra });
}

function issuesOf(text: string): readonly ConfigIssue[] {
  try {
    loadBootstrapText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

const monitor = (name: string, max: unknown): Json => ({ name, typed_config: { '@type': DOWNSTREAM_CX, max_active_downstream_connections: max } });

test("Envoy's defaults when nothing is set", () => {
  const { bootstrap: b } = loadBootstrapText(doc());
  const l = b.listeners[0]!;
  expect(hcmOf(l.filterChains[0]).streamIdleTimeoutMs).toBe(300_000);
  expect(hcmOf(l.filterChains[0]).requestTimeoutMs).toBe(0);
  expect(hcmOf(l.filterChains[0]).requestHeadersTimeoutMs).toBe(0);
  expect(hcmOf(l.filterChains[0]).maxRequestHeadersKb).toBe(60);
  expect(hcmOf(l.filterChains[0]).commonHttpProtocolOptions).toEqual({ idleTimeoutMs: 3_600_000, maxConnectionDurationMs: 0, maxHeadersCount: 100, maxRequestsPerConnection: 0 });
  expect(l.statPrefix).toBe('127.0.0.1_0');
  expect(l.ignoreGlobalConnLimit).toBe(false);
  expect((hcmOf(l.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!.action as ForwardAction).idleTimeoutMs).toBeNull();
  expect(b.overloadManager.maxActiveDownstreamConnections).toBeNull();
});

test('set values reach the model', () => {
  const { bootstrap: b } = loadBootstrapText(doc(
    {
      stream_idle_timeout: '2s', request_timeout: '30s', request_headers_timeout: '5s', max_request_headers_kb: 96,
      common_http_protocol_options: { idle_timeout: '60s', max_connection_duration: '600s', max_headers_count: 50, max_requests_per_connection: 10 },
    },
    { idle_timeout: '0s' },
    { overload_manager: { refresh_interval: '0.25s', resource_monitors: [monitor('envoy.resource_monitors.global_downstream_max_connections', 5000)] } },
    { stat_prefix: 'public', ignore_global_conn_limit: true },
  ));
  const l = b.listeners[0]!;
  expect([hcmOf(l.filterChains[0]).streamIdleTimeoutMs, hcmOf(l.filterChains[0]).requestTimeoutMs, hcmOf(l.filterChains[0]).requestHeadersTimeoutMs, hcmOf(l.filterChains[0]).maxRequestHeadersKb]).toEqual([2000, 30_000, 5000, 96]);
  expect(hcmOf(l.filterChains[0]).commonHttpProtocolOptions).toEqual({ idleTimeoutMs: 60_000, maxConnectionDurationMs: 600_000, maxHeadersCount: 50, maxRequestsPerConnection: 10 });
  expect((hcmOf(l.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!.action as ForwardAction).idleTimeoutMs).toBe(0);
  expect([l.statPrefix, l.ignoreGlobalConnLimit]).toEqual(['public', true]);
  expect(b.overloadManager.maxActiveDownstreamConnections).toBe(5000);
});

test('what sidemirror does not enforce is refused by path, every error at once', () => {
  const issues = issuesOf(doc(
    { max_request_headers_kb: 9000, common_http_protocol_options: { max_stream_duration: '10s', max_headers_count: 0 } },
    {},
    {
      overload_manager: {
        resource_monitors: [
          { name: 'envoy.resource_monitors.fixed_heap' },
          monitor('envoy.resource_monitors.global_downstream_max_connections', 0),
        ],
        actions: [{ name: 'envoy.overload_actions.stop_accepting_requests', triggers: [{ name: 'envoy.resource_monitors.fixed_heap', threshold: { value: 0.95 } }] }],
      },
    },
  ));
  const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
  expect(byPath[`${HCM}.max_request_headers_kb`]).toMatch(/between 1 and 8192/);
  expect(byPath[`${HCM}.common_http_protocol_options.max_stream_duration`]).toMatch(/not supported by sidemirror/);
  expect(byPath[`${HCM}.common_http_protocol_options.max_headers_count`]).toMatch(/at least 1/);
  expect(byPath['overload_manager.resource_monitors[0].name']).toMatch(/"envoy.resource_monitors.fixed_heap" is not supported by sidemirror/);
  expect(byPath['overload_manager.resource_monitors[1].typed_config.max_active_downstream_connections']).toMatch(/greater than 0/);
  expect(byPath['overload_manager.actions']).toMatch(/not supported by sidemirror/);
  expect(issues).toHaveLength(6);
});

test('a listener connection limit in a static runtime layer reaches the runtime (numbers, strings and bools)', () => {
  const { bootstrap: b } = loadBootstrapText(doc({}, {}, {
    layered_runtime: { layers: [{ name: 'static', static_layer: { 'envoy.resource_limits.listener.ingress.connection_limit': 100, a: { b: 'x', c: true } } }] },
  }));
  const layer = b.runtime[0]!;
  if (layer.kind !== 'static') throw new Error('expected a static layer');
  expect(layer.values.get('envoy.resource_limits.listener.ingress.connection_limit')).toBe('100');
  expect(layer.values.get('a.b')).toBe('x');
  expect(layer.values.get('a.c')).toBe('true');
});
