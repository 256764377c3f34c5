import * as protobuf from 'protobufjs';
import { decodeProto3Json, normalizeProto3Json } from '../../src/config/proto-json';

// A small Envoy-shaped schema, so these tests do not depend on the real proto/ tree.
const SRC = `
syntax = "proto3";
package test.v3;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Bootstrap {
  Node node = 1;
  StaticResources static_resources = 2;
  google.protobuf.Duration stats_flush_interval = 3;
}
message Node {
  string id = 1;
  google.protobuf.Struct metadata = 2;
}
message StaticResources {
  repeated Listener listeners = 1;
  repeated Cluster clusters = 2;
}
message Listener {
  string name = 1;
  Address address = 2;
  repeated FilterChain filter_chains = 3;
  google.protobuf.UInt32Value per_connection_buffer_limit_bytes = 4;
}
message Address {
  string address = 1;
  uint32 port_value = 2;
}
message FilterChain { repeated Filter filters = 1; }
message Filter {
  string name = 1;
  oneof config_type { google.protobuf.Any typed_config = 4; }
}
message HttpConnectionManager {
  enum CodecType { AUTO = 0; HTTP1 = 1; HTTP2 = 2; }
  string stat_prefix = 1;
  RouteConfiguration route_config = 2;
  repeated HttpFilter http_filters = 3;
  CodecType codec_type = 4;
}
message HttpFilter {
  string name = 1;
  google.protobuf.Any typed_config = 2;
}
message Router { google.protobuf.BoolValue dynamic_stats = 1; }
message RouteConfiguration {
  string name = 1;
  repeated VirtualHost virtual_hosts = 2;
}
message VirtualHost {
  string name = 1;
  repeated string domains = 2;
  repeated Route routes = 3;
  map<string, google.protobuf.Any> typed_per_filter_config = 4;
}
message Route {
  RouteMatch match = 1;
  RouteAction route = 2;
}
message RouteMatch { oneof path_specifier { string prefix = 1; string path = 2; } }
message RouteAction {
  oneof cluster_specifier { string cluster = 1; string cluster_header = 2; }
  google.protobuf.Duration timeout = 3;
}
message Cluster {
  enum LbPolicy { ROUND_ROBIN = 0; LEAST_REQUEST = 1; RANDOM = 3; }
  string name = 1;
  google.protobuf.Duration connect_timeout = 2;
  LbPolicy lb_policy = 3;
  google.protobuf.UInt32Value max_requests = 4;
  int64 max_bytes = 5;
  map<uint32, string> by_port = 6;
  bytes secret = 7;
  double weight = 8;
  optional uint32 priority = 9;
  string alt_stat_name = 10 [json_name = "altName"];
  google.protobuf.Timestamp created = 11;
  int32 delta = 12;
  sint32 zigzag = 13;
  repeated LbPolicy fallbacks = 14;
}
`;

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // parse() only lists imports; the google/protobuf ones are bundled with protobufjs, and
  // loadSync serves them from that bundle without touching the file system.
  const parsed = protobuf.parse(SRC, root, { keepCase: true });
  root.loadSync(parsed.imports ?? [], { keepCase: true });
  root.resolveAll();
  return root;
}

const root = loadRoot();
const Bootstrap = root.lookupType('test.v3.Bootstrap');
const Cluster = root.lookupType('test.v3.Cluster');
const Hcm = root.lookupType('test.v3.HttpConnectionManager');
const Router = root.lookupType('test.v3.Router');
const HCM_URL = 'type.googleapis.com/test.v3.HttpConnectionManager';
const ROUTER_URL = 'type.googleapis.com/test.v3.Router';

const TO_OBJECT = { longs: String, enums: String } as const;

/** A valid bootstrap, mixing snake_case and camelCase keys as real configs do. */
function bootstrap(routes: unknown[] = [{ match: { prefix: '/' }, route: { cluster: 'backend', timeout: '1.5s' } }]) {
  return {
    node: { id: 'sidecar-1', metadata: { zone: 'a', weight: 3, tags: ['x'], extra: null } },
    staticResources: {
      listeners: [
        {
          name: 'ingress',
          address: { address: '0.0.0.0', portValue: 10000 },
          per_connection_buffer_limit_bytes: 32768,
          filterChains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typedConfig: {
                    '@type': HCM_URL,
                    statPrefix: 'ingress_http',
                    codec_type: 'AUTO',
                    route_config: {
                      name: 'local',
                      virtual_hosts: [
                        {
                          name: 'all',
                          domains: ['*'],
                          routes,
                          typedPerFilterConfig: {
                            'envoy.filters.http.router': { '@type': ROUTER_URL, dynamicStats: false },
                          },
                        },
                      ],
                    },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_URL } }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [{ name: 'backend', connectTimeout: '0.25s', lb_policy: 'LEAST_REQUEST', maxRequests: 100 }],
    },
  };
}

const LISTENER = 'static_resources.listeners[0]';
const HCM_PATH = `${LISTENER}.filter_chains[0].filters[0].typed_config`;
const VHOST = `${HCM_PATH}.route_config.virtual_hosts[0]`;

describe('normalizeProto3Json', () => {
  it('accepts camelCase and json_name keys and rewrites them to proto field names', () => {
    const { value, issues } = normalizeProto3Json(
      Cluster,
      { name: 'c', connectTimeout: '5s', lbPolicy: 'RANDOM', maxRequests: 7, altName: 'alt', maxBytes: '9007199254740993' },
      'cluster',
    );
    expect(issues).toEqual([]);
    expect(value).toEqual({
      name: 'c',
      connect_timeout: '5s',
      lb_policy: 'RANDOM',
      max_requests: 7,
      alt_stat_name: 'alt',
      max_bytes: '9007199254740993', // 64-bit values stay strings: no precision lost
    });
  });

  it('normalizes inside Any payloads and keeps @type', () => {
    const { value, issues } = normalizeProto3Json(Bootstrap, bootstrap(), '');
    expect(issues).toEqual([]);
    const filter = (value as any).static_resources.listeners[0].filter_chains[0].filters[0];
    expect(Object.keys(filter.typed_config)).toEqual(['@type', 'stat_prefix', 'codec_type', 'route_config', 'http_filters']);
    expect(filter.typed_config.route_config.virtual_hosts[0].typed_per_filter_config).toEqual({
      'envoy.filters.http.router': { '@type': ROUTER_URL, dynamic_stats: false },
    });
  });

  it('reports an unknown field at its path with a suggestion', () => {
    const json = bootstrap();
    const hcm = json.staticResources.listeners[0].filterChains[0].filters[0].typedConfig as Record<string, unknown>;
    hcm.stat_prefx = hcm.statPrefix;
    delete hcm.statPrefix;
    hcm.xyz = 1;
    expect(normalizeProto3Json(Bootstrap, json, 'bootstrap').issues).toEqual([
      { path: `bootstrap.${HCM_PATH}.stat_prefx`, message: 'unknown field "stat_prefx" (did you mean "stat_prefix"?)' },
      { path: `bootstrap.${HCM_PATH}.xyz`, message: 'unknown field "xyz"' },
    ]);
  });

  it('suggests a field that matches case-insensitively', () => {
    expect(normalizeProto3Json(Cluster, { ConnectTimeout: '1s' }, '').issues).toEqual([
      { path: 'ConnectTimeout', message: 'unknown field "ConnectTimeout" (did you mean "connect_timeout"?)' },
    ]);
  });

  it('reports every issue of a document in one call, with exact paths', () => {
    const json = bootstrap([
      { match: { prefix: '/' }, route: { cluster: 'backend' } },
      { match: { prefix: '/slow' }, route: { cluster: 'slow', timeout: '5m' } },
    ]) as any;
    json.staticResources.listeners[0].address.portValue = 4294967296;
    json.staticResources.listeners[0].per_connection_buffer_limit_bytes = '-1';
    json.staticResources.listeners[0].filterChains[0].filters[0].typedConfig.codec_type = 'HTTP3';
    json.staticResources.clusters[0].lb_policy = 'ROUND_ROBBIN';
    json.staticResources.clusters[0].connectTimeout = 5;
    json.statsFlushInterval = '10s';
    json.node = [];
    const { issues } = normalizeProto3Json(Bootstrap, json, '');
    expect(issues).toEqual([
      { path: 'node', message: 'expected an object, got array' },
      { path: `${LISTENER}.address.port_value`, message: '4294967296 is out of range for uint32' },
      { path: `${LISTENER}.per_connection_buffer_limit_bytes`, message: '-1 is out of range for uint32' },
      {
        path: `${HCM_PATH}.codec_type`,
        message: 'unknown value "HTTP3" for enum test.v3.HttpConnectionManager.CodecType (did you mean "HTTP1"?); allowed: AUTO, HTTP1, HTTP2',
      },
      {
        path: 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[1].route.timeout',
        message: 'expected a duration like "1.5s", got "5m"',
      },
      { path: 'static_resources.clusters[0].connect_timeout', message: 'expected a duration like "1.5s", got number' },
      {
        path: 'static_resources.clusters[0].lb_policy',
        message:
          'unknown value "ROUND_ROBBIN" for enum test.v3.Cluster.LbPolicy (did you mean "ROUND_ROBIN"?); allowed: ROUND_ROBIN, LEAST_REQUEST, RANDOM',
      },
    ]);
  });

  it('reports two members of one oneof, naming both', () => {
    const json = bootstrap([{ match: { prefix: '/', path: '/x' }, route: { cluster: 'a', clusterHeader: 'x-cluster' } }]);
    expect(normalizeProto3Json(Bootstrap, json, '').issues).toEqual([
      { path: `${VHOST}.routes[0].match.path`, message: 'only one of "prefix", "path" may be set (oneof "path_specifier")' },
      {
        path: `${VHOST}.routes[0].route.cluster_header`,
        message: 'only one of "cluster", "cluster_header" may be set (oneof "cluster_specifier")',
      },
    ]);
  });

  it('does not treat proto3 optional fields as a oneof, and drops nulls as unset', () => {
    const { value, issues } = normalizeProto3Json(Cluster, { priority: 0, name: 'c', weight: null, route: {} }, '');
    expect(issues).toEqual([{ path: 'route', message: 'unknown field "route"' }]);
    expect(value).toEqual({ priority: 0, name: 'c' });
  });

  it('reports a field given under both spellings', () => {
    expect(normalizeProto3Json(Cluster, { lb_policy: 'RANDOM', lbPolicy: 'RANDOM' }, 'c').issues).toEqual([
      { path: 'c.lb_policy', message: 'field given twice, as "lb_policy" and "lbPolicy"' },
    ]);
  });

  it('checks enums given as numbers and in repeated fields', () => {
    const { value, issues } = normalizeProto3Json(Cluster, { lb_policy: 3, fallbacks: ['RANDOM', 2, true] }, '');
    // Bad elements are left out of the copy, so the rest can still be converted.
    expect(value).toEqual({ lb_policy: 3, fallbacks: ['RANDOM'] });
    expect(issues).toEqual([
      { path: 'fallbacks[1]', message: '2 is not a value of enum test.v3.Cluster.LbPolicy; allowed: ROUND_ROBIN, LEAST_REQUEST, RANDOM' },
      { path: 'fallbacks[2]', message: 'expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, got boolean' },
    ]);
  });

  it.each([
    ['5', 'expected a duration like "1.5s", got "5"'],
    ['100ms', 'expected a duration like "1.5s", got "100ms"'],
    ['1.1234567890s', 'expected a duration like "1.5s", got "1.1234567890s"'],
    ['-1s', 'negative durations are not supported'],
    [{ seconds: 1 }, 'expected a duration like "1.5s", got object'],
  ])('rejects the duration %j', (timeout, message) => {
    expect(normalizeProto3Json(Cluster, { connect_timeout: timeout }, 'c').issues).toEqual([
      { path: 'c.connect_timeout', message },
    ]);
  });

  it('takes wrappers as the bare value, not as {value: ...}', () => {
    expect(normalizeProto3Json(Cluster, { max_requests: '12' }, '')).toEqual({ value: { max_requests: 12 }, issues: [], dropped: [] });
    expect(normalizeProto3Json(Router, { dynamic_stats: true }, '').issues).toEqual([]);
    expect(normalizeProto3Json(Cluster, { max_requests: { value: 12 } }, '').issues).toEqual([
      { path: 'max_requests', message: 'expected uint32 (a google.protobuf.UInt32Value is written as the bare value), got object' },
    ]);
    expect(normalizeProto3Json(Router, { dynamic_stats: 'false' }, '').issues).toEqual([
      { path: 'dynamic_stats', message: 'expected a boolean, got string' },
    ]);
  });

  it('reports an Any whose @type is unknown or missing', () => {
    const json = bootstrap() as any;
    const vhost = json.staticResources.listeners[0].filterChains[0].filters[0].typedConfig.route_config.virtual_hosts[0];
    vhost.typedPerFilterConfig['envoy.filters.http.nope'] = { '@type': 'type.googleapis.com/x.y.Z', a: 1 };
    vhost.typedPerFilterConfig['envoy.filters.http.untyped'] = { dynamic_stats: true };
    // A type URL names a type absolutely; a nested-namespace match by short name does not count.
    vhost.typedPerFilterConfig['envoy.filters.http.short'] = { '@type': 'type.googleapis.com/Router' };
    expect(normalizeProto3Json(Bootstrap, json, '').issues).toEqual([
      { path: `${VHOST}.typed_per_filter_config["envoy.filters.http.nope"].@type`, message: 'unknown type "type.googleapis.com/x.y.Z"' },
      { path: `${VHOST}.typed_per_filter_config["envoy.filters.http.untyped"]`, message: 'missing "@type"' },
      { path: `${VHOST}.typed_per_filter_config["envoy.filters.http.short"].@type`, message: 'unknown type "type.googleapis.com/Router"' },
    ]);
  });

  it('reads well-known types inside an Any from "value"', () => {
    const Filter = root.lookupType('test.v3.Filter');
    const ok = { typed_config: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' } };
    expect(normalizeProto3Json(Filter, ok, '').issues).toEqual([]);
    const bad = { typed_config: { '@type': 'type.googleapis.com/google.protobuf.Duration', seconds: 2 } };
    expect(normalizeProto3Json(Filter, bad, '').issues).toEqual([
      { path: 'typed_config.seconds', message: 'unknown field "seconds"' },
      { path: 'typed_config', message: 'missing "value" (a google.protobuf.Duration in an Any goes under "value")' },
    ]);
  });

  it('checks integer ranges and forms', () => {
    const { value, issues } = normalizeProto3Json(
      Cluster,
      { delta: '-2147483648', max_bytes: 9007199254740993, max_requests: 1.5, by_port: { '80': 'http', abc: 'x', '-1': 'y' }, weight: 'fast' },
      '',
    );
    expect((value as any).delta).toBe(-2147483648);
    expect(issues).toEqual([
      { path: 'max_bytes', message: '9007199254740992 is too large for a JSON number; quote it as a string' },
      { path: 'max_requests', message: 'expected uint32 (an integer), got 1.5' },
      { path: 'by_port["abc"]', message: 'expected uint32 (an integer), got "abc"' },
      { path: 'by_port["-1"]', message: '-1 is out of range for uint32' },
      { path: 'weight', message: 'expected double (a number), got string' },
    ]);
  });

  it('checks float and double forms and ranges', () => {
    expect(normalizeProto3Json(Cluster, { weight: 'NaN' }, '').issues).toEqual([]);
    expect(normalizeProto3Json(Cluster, { weight: '-2.5e3' }, '').issues).toEqual([]);
    expect(normalizeProto3Json(Cluster, { weight: Infinity }, '').issues).toEqual([]); // YAML .inf
    expect(normalizeProto3Json(Cluster, { weight: '1e999' }, '').issues).toEqual([
      { path: 'weight', message: '1e999 is out of range for double' },
    ]);
    expect(normalizeProto3Json(Cluster, { weight: true }, '').issues).toEqual([
      { path: 'weight', message: 'expected double (a number), got boolean' },
    ]);
  });

  it('checks repeated, map, bytes and timestamp shapes', () => {
    const VirtualHost = root.lookupType('test.v3.VirtualHost');
    expect(normalizeProto3Json(VirtualHost, { domains: '*', typed_per_filter_config: [] }, 'vh').issues).toEqual([
      { path: 'vh.domains', message: 'expected an array, got string' },
      { path: 'vh.typed_per_filter_config', message: 'expected an object (a map), got array' },
    ]);
    expect(normalizeProto3Json(VirtualHost, { domains: ['a', null, 3] }, '').issues).toEqual([
      { path: 'domains[1]', message: 'expected a list element, got null' },
      { path: 'domains[2]', message: 'expected a string, got number' },
    ]);
    expect(normalizeProto3Json(Cluster, { secret: 'not base64!', created: '2024-02-30T00:00:00Z' }, '').issues).toEqual([
      { path: 'secret', message: 'invalid base64' },
      { path: 'created', message: 'expected an RFC 3339 timestamp like "2024-01-31T12:00:00Z", got "2024-02-30T00:00:00Z"' },
    ]);
  });

  it('rewrites timestamps with an offset to UTC, keeping the fraction', () => {
    expect(normalizeProto3Json(Cluster, { created: '2024-01-01T01:30:00.123456+01:00' }, '').value).toEqual({
      created: '2024-01-01T00:30:00.123456Z',
    });
    expect(normalizeProto3Json(Cluster, { created: '9999-12-31T23:00:00-05:00' }, '').issues).toEqual([
      { path: 'created', message: '9999-12-31T23:00:00-05:00 is out of range for a timestamp (years 0001 to 9999 UTC)' },
    ]);
  });
});

describe('decodeProto3Json', () => {
  it('decodes a valid document, camelCase keys included', () => {
    const { message, issues } = decodeProto3Json(Bootstrap, bootstrap(), '');
    expect(issues).toEqual([]);
    const obj = Bootstrap.toObject(message!, TO_OBJECT) as any;
    expect(obj.node).toEqual({
      id: 'sidecar-1',
      metadata: {
        fields: {
          zone: { stringValue: 'a' },
          weight: { numberValue: 3 },
          tags: { listValue: { values: [{ stringValue: 'x' }] } },
          extra: { nullValue: 'NULL_VALUE' },
        },
      },
    });
    const listener = obj.static_resources.listeners[0];
    expect(listener.address).toEqual({ address: '0.0.0.0', port_value: 10000 });
    expect(listener.per_connection_buffer_limit_bytes).toEqual({ value: 32768 });
    expect(obj.static_resources.clusters[0]).toEqual({
      name: 'backend',
      connect_timeout: { nanos: 250000000 },
      lb_policy: 'LEAST_REQUEST',
      max_requests: { value: 100 },
    });

    const any = listener.filter_chains[0].filters[0].typed_config;
    expect(any.type_url).toBe(HCM_URL);
    const hcm = Hcm.toObject(Hcm.decode(any.value), TO_OBJECT) as any;
    expect(hcm.stat_prefix).toBe('ingress_http'); // was `statPrefix` in the input
    const vhost = hcm.route_config.virtual_hosts[0];
    expect(vhost.routes[0].route).toEqual({ cluster: 'backend', timeout: { seconds: '1', nanos: 500000000 } });
    const perFilter = vhost.typed_per_filter_config['envoy.filters.http.router'];
    expect(Router.toObject(Router.decode(perFilter.value), TO_OBJECT)).toEqual({ dynamic_stats: { value: false } });
  });

  it('keeps 64-bit integers exact and decodes special floats', () => {
    const { message, issues } = decodeProto3Json(Cluster, { maxBytes: '9007199254740993', weight: 'Infinity' }, '');
    expect(issues).toEqual([]);
    expect(Cluster.toObject(message!, TO_OBJECT)).toEqual({ max_bytes: '9007199254740993', weight: Infinity });
  });

  it('decodes timestamps with an offset and well-known types inside an Any', () => {
    const created = decodeProto3Json(Cluster, { created: '1970-01-01T01:00:01.5+01:00' }, '');
    expect(Cluster.toObject(created.message!, TO_OBJECT)).toEqual({ created: { seconds: '1', nanos: 500000000 } });

    const Filter = root.lookupType('test.v3.Filter');
    const Duration = root.lookupType('google.protobuf.Duration');
    const json = { typed_config: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2.5s' } };
    const { message, issues } = decodeProto3Json(Filter, json, '');
    expect(issues).toEqual([]);
    const any = Filter.toObject(message!, TO_OBJECT).typed_config;
    expect(Duration.toObject(Duration.decode(any.value), TO_OBJECT)).toEqual({ seconds: '2', nanos: 500000000 });
  });

  it('returns the issues and no message when the document is invalid', () => {
    const result = decodeProto3Json(Cluster, { lbPolicy: 'NOPE', bogus: 1 }, 'clusters[0]');
    expect(result.message).toBeUndefined();
    expect(result.issues.map((i) => i.path)).toEqual(['clusters[0].lb_policy', 'clusters[0].bogus']);
  });

  it('reports a top-level non-object', () => {
    expect(decodeProto3Json(Cluster, null, 'c').issues).toEqual([{ path: 'c', message: 'expected an object, got null' }]);
  });

  it('turns a serializer failure into an issue at the given path', () => {
    // proto3-json-serializer 3 cannot convert sint32 fields; we pass through its error.
    const { message, issues } = decodeProto3Json(Cluster, { zigzag: 1 }, 'clusters[0]');
    expect(message).toBeUndefined();
    expect(issues).toEqual([{ path: 'clusters[0]', message: expect.stringContaining('zigzag') }]);
  });
});
