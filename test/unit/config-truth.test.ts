import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { LayeredRuntime, NoAdminLayerError } from '../../src/runtime/runtime';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';

// Config truthfulness: every error of a file in one report, and runtime layers that act.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const ROUTES = `${HCM}.route_config.virtual_hosts[0].routes`;

function issuesOf(doc: Json | string): readonly ConfigIssue[] {
  try {
    loadBootstrapText(typeof doc === 'string' ? doc : JSON.stringify(doc));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

function doc(o: { routes?: Json[]; clusters?: Json[]; extra?: Json; hcm?: Json; listenerExtra?: Json } = {}): Json {
  const l = listener(routeConfig(o.routes ?? [route('/', 'primary')]), { hcm: o.hcm });
  return JSON.parse(bootstrap({
    listeners: [{ ...l, ...o.listenerExtra }],
    clusters: o.clusters ?? [cluster('primary', [8081]), cluster('mirror', [8082])],
    extra: o.extra,
  })) as Json;
}

describe('one run reports every error', () => {
  test('a bad duration, a cluster/cluster_header clash, MAGLEV and an unknown cluster, in one report', () => {
    const issues = issuesOf(doc({
      routes: [
        route('/a', 'primary', { request_mirror_policies: [{ cluster: 'mirror', cluster_header: 'x-mirror' }] }),
        route('/b', 'nowhere'),
      ],
      clusters: [
        cluster('primary', [8081], { connect_timeout: '5 seconds' }),
        cluster('mirror', [8082], { lb_policy: 'MAGLEV' }),
      ],
    }));
    expect(issues).toEqual([
      { path: 'static_resources.clusters[0].connect_timeout', message: 'expected a duration like "1.5s", got "5 seconds"' },
      {
        path: `${ROUTES}[0].route.request_mirror_policies[0]`,
        message: 'only one of cluster or cluster_header can be specified in a request mirror policy',
      },
      { path: 'static_resources.clusters[1].lb_policy', message: expect.stringMatching(/^lb_policy MAGLEV is not supported/) },
      { path: `${ROUTES}[1].route.cluster`, message: 'unknown cluster "nowhere"' },
    ]);
  });

  test('a dropped value is reported once, not again as missing by a later stage', () => {
    const d = doc();
    d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config['@type'] = 'type.googleapis.com/nope.Nope';
    expect(issuesOf(d)).toEqual([{ path: `${HCM}.@type`, message: 'unknown type "type.googleapis.com/nope.Nope"' }]);
  });
});

describe('known Envoy fields that sidemirror leaves out', () => {
  test('filter_chain_match.destination_port, transport_socket_connect_timeout, tracing, cleanup_interval: "not supported by sidemirror" by path', () => {
    const d = doc({ hcm: { tracing: { random_sampling: { value: 10 } } } });
    const chain = d.static_resources.listeners[0].filter_chains[0];
    chain.filter_chain_match = { server_names: ['a.example'], destination_port: 443 };
    chain.transport_socket_connect_timeout = '1s';
    d.static_resources.clusters[0].cleanupInterval = '5s'; // the JSON spelling too
    expect(issuesOf(d)).toEqual([
      { path: 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing', message: 'not supported by sidemirror' },
      { path: 'static_resources.listeners[0].filter_chains[0].filter_chain_match.destination_port', message: 'not supported by sidemirror' },
      { path: 'static_resources.listeners[0].filter_chains[0].transport_socket_connect_timeout', message: 'not supported by sidemirror' },
      { path: 'static_resources.clusters[0].cleanup_interval', message: 'not supported by sidemirror' },
    ]);
  });

  test('a real typo is still an unknown field, with a suggestion', () => {
    const d = doc();
    d.static_resources.clusters[0].outlier_detecton = { consecutive_5xx: 5 };
    expect(issuesOf(d)).toEqual([
      { path: 'static_resources.clusters[0].outlier_detecton', message: 'unknown field "outlier_detecton" (did you mean "outlier_detection"?)' },
    ]);
  });
});

describe('layered_runtime', () => {
  const withRuntime = (layers: Json[]): Json => doc({ extra: { layered_runtime: { layers } } });

  test('static layers load, nested keys flattened with dots, later layers winning', () => {
    const loaded = loadBootstrapText(JSON.stringify(withRuntime([
      { name: 'base', static_layer: { 'mirror.rf': 0, health_check: { min_interval: 5 }, flag: true, s: 'text' } },
      { name: 'over', static_layer: { mirror: { rf: 25 } } },
      { name: 'admin', admin_layer: {} },
    ])));
    const runtime = new LayeredRuntime(loaded.bootstrap.runtime);
    expect(runtime.layerNames()).toEqual(['base', 'over', 'admin']);
    expect(runtime.get('health_check.min_interval')).toBe('5');
    expect(runtime.get('flag')).toBe('true');
    expect(runtime.get('s')).toBe('text');
    expect(runtime.get('mirror.rf')).toBe('25');
    expect(runtime.entries().find((e) => e.key === 'mirror.rf')).toEqual({
      key: 'mirror.rf', layerValues: ['0', '25', ''], adminValue: undefined, finalValue: '25',
    });
    // The admin layer overrides the static ones; an empty value removes the override.
    runtime.modify('mirror.rf', '0');
    expect(runtime.featureEnabled('mirror.rf', { numerator: 100, denominator: 100 }, 5)).toBe(false);
    runtime.modify('mirror.rf', '');
    expect(runtime.get('mirror.rf')).toBe('25');
  });

  test('a FractionalPercent object in a static layer is one entry the runtime reads as a fraction', () => {
    const loaded = loadBootstrapText(JSON.stringify(withRuntime([
      { name: 'base', static_layer: { 'mirror.rf': { numerator: 1, denominator: 'TEN_THOUSAND' } } },
    ])));
    const runtime = new LayeredRuntime(loaded.bootstrap.runtime);
    const full = { numerator: 100, denominator: 100 };
    expect(runtime.featureEnabled('mirror.rf', full, 0)).toBe(true);
    expect(runtime.featureEnabled('mirror.rf', full, 1)).toBe(false);
  });

  test('without an admin layer, /runtime_modify has nowhere to write (Envoy: "No admin layer specified")', () => {
    const loaded = loadBootstrapText(JSON.stringify(withRuntime([{ name: 'base', static_layer: { a: 1 } }])));
    const runtime = new LayeredRuntime(loaded.bootstrap.runtime);
    expect(() => runtime.modify('a', '2')).toThrow(NoAdminLayerError);
    expect(runtime.get('a')).toBe('1');
  });

  test('bad layers are refused by path', () => {
    expect(issuesOf(withRuntime([
      { name: 'a', admin_layer: {} },
      { name: 'a', admin_layer: {} },
      { name: 'c', static_layer: { list: [1, 2], nothing: null } },
      { name: 'd', disk_layer: { symlink_root: '/srv/runtime' } },
      { name: 'e', rtds_layer: { name: 'rt' } },
    ]))).toEqual([
      { path: 'layered_runtime.layers[3].disk_layer', message: 'not supported by sidemirror' },
      { path: 'layered_runtime.layers[4].rtds_layer', message: 'not supported by sidemirror' },
      { path: 'layered_runtime.layers[1].name', message: 'duplicate layer name "a"' },
      { path: 'layered_runtime.layers[1].admin_layer', message: 'at most one admin layer may be given' },
      { path: 'layered_runtime.layers[2].static_layer["list"]', message: 'a runtime value must be a number, string, boolean or object (not null or a list)' },
      { path: 'layered_runtime.layers[2].static_layer["nothing"]', message: 'a runtime value must be a number, string, boolean or object (not null or a list)' },
      // What the layer could have been instead.
      { path: 'layered_runtime.layers[3]', message: 'one of static_layer or admin_layer is required' },
      { path: 'layered_runtime.layers[4]', message: 'one of static_layer or admin_layer is required' },
    ]);
  });
});

describe('declared fields that sidemirror does not act on are refused by path', () => {
  test('cluster, endpoint, listener, HCM, router, route and mirror policy fields', () => {
    const d = doc({
      routes: [route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror', trace_sampled: false }] })],
      clusters: [
        cluster('primary', [8081], { respect_dns_ttl: true, alt_stat_name: 'p' }),
        cluster('mirror', [8082]),
      ],
      hcm: { add_user_agent: true, drain_timeout: '1s' },
    });
    d.static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.health_check_config = { port_value: 9 };
    const hcm = d.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    hcm.http_filters[0].typed_config.start_child_span = true;
    hcm.route_config.virtual_hosts[0].require_tls = 'ALL';
    const c0 = 'static_resources.clusters[0]';
    expect(issuesOf(d).map((i) => `${i.path}: ${i.message}`)).toEqual([
      `${HCM}.route_config.virtual_hosts[0].require_tls: ALL is not supported by sidemirror`,
      `${ROUTES}[0].route.request_mirror_policies[0].trace_sampled: not supported by sidemirror (no tracing)`,
      `${HCM}.http_filters[0].typed_config.start_child_span: not supported by sidemirror`,
      `${HCM}.drain_timeout: not supported by sidemirror`,
      `${HCM}.add_user_agent: true is not supported by sidemirror`,
      `${c0}.alt_stat_name: not supported by sidemirror`,
      `${c0}.respect_dns_ttl: not supported by sidemirror`,
      'static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.health_check_config: not supported by sidemirror',
    ]);
  });

  test('dynamic_resources must take listeners and clusters over ADS', () => {
    const d = doc({ extra: { dynamic_resources: {
      ads_config: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'primary' } }] },
      cds_config: { ads: {} },
      lds_config: { path_config_source: { path: '/etc/lds.yaml' } },
    } } });
    expect(issuesOf(d)).toEqual([
      { path: 'dynamic_resources.lds_config.path_config_source', message: 'not supported by sidemirror' },
      { path: 'dynamic_resources.lds_config', message: 'lds_config must be { ads: {} } (sidemirror takes listeners and clusters over ADS)' },
    ]);
  });
});
