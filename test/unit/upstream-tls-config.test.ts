import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { Bootstrap, Cluster, ForwardAction, HttpConnectionManager, Route } from '../../src/config/model';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, SECRET_TYPE, decodeResourceBytes, decodeSecretResourceBytes } from '../../src/config/resources';
import { loadEnvoyRoot } from '../../scripts/envoy-fields';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';
import { hcmOf } from '../harness/model';

// Upstream TLS and protocol selection, transport socket matches with endpoint metadata, upgrades,
// the gRPC route match and max stream duration: YAML through loadBootstrapText, and the xDS wire
// (encoded with Envoy's real protos) through decodeResourceBytes.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const UPSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const HPO_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const ROUTE0 = `${HCM}.route_config.virtual_hosts[0].routes[0].route`;
const C0 = 'static_resources.clusters[0]';

let certs: TestCertificates;
beforeAll(() => {
  certs = makeTestCertificates();
});
afterAll(() => certs.remove());

const tlsSocket = (ctx: Json = {}): Json => ({ name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM, ...ctx } });
const protocolOptions = (opts: Json): Json => ({ typed_extension_protocol_options: { [HPO_KEY]: { '@type': `type.googleapis.com/${HPO_KEY}`, ...opts } } });

function doc(o: { clusterExtra?: Json; action?: Json; match?: Json; hcm?: Json } = {}): string {
  return bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary', o.action ?? {}, o.match ?? {})]), { hcm: o.hcm })],
    clusters: [cluster('primary', [8081], o.clusterExtra ?? {})],
  });
}

const load = (text: string): Bootstrap => loadBootstrapText(text).bootstrap;
const primary = (text: string): Cluster => load(text).clusters[0]!;
const firstRoute = (text: string): Route => hcmOf(load(text).listeners[0]!.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!;
const forward = (text: string): ForwardAction => firstRoute(text).action as ForwardAction;
const hcm = (text: string): HttpConnectionManager => hcmOf(load(text).listeners[0]!.filterChains[0]);

function issuesOf(text: string): string[] {
  try {
    loadBootstrapText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('the configuration was accepted');
}

describe('cluster transport_socket', () => {
  test('UpstreamTlsContext: SNI, ALPN, a client certificate and server verification decode', () => {
    const c = primary(doc({ clusterExtra: { transport_socket: tlsSocket({
      sni: 'backend.internal',
      common_tls_context: {
        alpn_protocols: ['h2'],
        tls_certificates: [{ certificate_chain: { filename: certs.clientCertFile }, private_key: { filename: certs.clientKeyFile } }],
        validation_context: { trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'localhost' } }] },
        tls_params: { tls_minimum_protocol_version: 'TLSv1_3' },
      },
    }) } }));
    expect(c.tls!.sni).toBe('backend.internal');
    expect(c.tls!.common.alpnProtocols).toEqual(['h2']);
    expect(c.tls!.common.tlsCertificates[0]!.certificateChain).toEqual({ kind: 'filename', path: certs.clientCertFile });
    expect(c.tls!.common.validationContext!.trustedCa).toEqual({ kind: 'filename', path: certs.caFile });
    expect(c.tls!.common.tlsParams.minVersion).toBe('TLSv1_3');
    expect(c.transportSocketMatches).toEqual([]);
    // No certificate is needed on the client side; no transport socket, or raw_buffer, is plaintext.
    expect(primary(doc({ clusterExtra: { transport_socket: tlsSocket() } })).tls!.common.tlsCertificates).toEqual([]);
    expect(primary(doc()).tls).toBeNull();
    expect(primary(doc({ clusterExtra: { transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } } })).tls).toBeNull();
  });

  test('SNI over 255 bytes, two client certificates, auto_host_sni and max_session_keys are refused by path', () => {
    const cert = { certificate_chain: { filename: certs.clientCertFile }, private_key: { filename: certs.clientKeyFile } };
    expect(issuesOf(doc({ clusterExtra: { transport_socket: tlsSocket({
      sni: 'a'.repeat(256), auto_host_sni: true, max_session_keys: 0, common_tls_context: { tls_certificates: [cert, cert] },
    }) } }))).toEqual([
      `${C0}.transport_socket.typed_config.max_session_keys: not supported by sidemirror`,
      `${C0}.transport_socket.typed_config.common_tls_context: Multiple TLS certificates are not supported for client contexts`,
      `${C0}.transport_socket.typed_config.auto_host_sni: not supported by sidemirror`,
      `${C0}.transport_socket.typed_config.sni: must be at most 255 bytes`,
    ]);
  });
});

describe('transport_socket_matches and endpoint metadata', () => {
  const matches = [
    { name: 'mtls', match: { tlsMode: 'istio' }, transport_socket: tlsSocket({ sni: 'outbound_.80_._.svc' }) },
    { name: 'plain', match: {}, transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } },
  ];

  test('matches decode in order; lb_endpoints metadata["envoy.transport_socket_match"] becomes transportSocketMatch', () => {
    const text = doc({ clusterExtra: { transport_socket_matches: matches } });
    const d = JSON.parse(text) as Json;
    d.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].metadata = {
      filter_metadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' }, istio: { workload: 'w' } },
    };
    const c = primary(JSON.stringify(d));
    expect(c.transportSocketMatches.map((m) => [m.name, [...m.match], m.tls?.sni ?? null])).toEqual([['mtls', [['tlsMode', 'istio']], 'outbound_.80_._.svc'], ['plain', [], null]]);
    expect([...c.loadAssignment!.endpoints[0]!.transportSocketMatch]).toEqual([['tlsMode', 'istio']]);
  });

  test('non-string values, a missing name or transport_socket are refused by path', () => {
    const d = JSON.parse(doc({ clusterExtra: { transport_socket_matches: [{ match: { acceptMTLS: true } }] } })) as Json;
    d.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].metadata = { filter_metadata: { 'envoy.transport_socket_match': { n: 1 } } };
    const ep = `${C0}.load_assignment.endpoints[0].lb_endpoints[0]`;
    expect(issuesOf(JSON.stringify(d))).toEqual([
      `${ep}.metadata.filter_metadata["envoy.transport_socket_match"]["n"]: must be a string (sidemirror matches string values only)`,
      `${C0}.transport_socket_matches[0].name: name is required`,
      `${C0}.transport_socket_matches[0].transport_socket: transport_socket is required`,
      `${C0}.transport_socket_matches[0].match["acceptMTLS"]: must be a string (sidemirror matches string values only)`,
    ]);
  });
});

describe('upstream protocol (HttpProtocolOptions)', () => {
  test('explicit h2, use_downstream_protocol_config and auto_config on TLS decode, HTTP/2 settings with Envoy defaults', () => {
    expect(primary(doc({ clusterExtra: protocolOptions({ explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 7 } } }) })).protocol)
      .toEqual({ kind: 'http2', http2: { maxConcurrentStreams: 7, initialStreamWindowSize: 16 * 1024 * 1024, initialConnectionWindowSize: 24 * 1024 * 1024 } });
    expect(primary(doc({ clusterExtra: protocolOptions({ use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} } }) })).protocol.kind).toBe('downstream');
    const auto = primary(doc({ clusterExtra: { ...protocolOptions({ auto_config: { http2_protocol_options: { initial_stream_window_size: 65535 } } }), transport_socket: tlsSocket() } }));
    expect(auto.protocol).toEqual({ kind: 'auto', http2: { maxConcurrentStreams: 1024, initialStreamWindowSize: 65535, initialConnectionWindowSize: 24 * 1024 * 1024 } });
    expect(primary(doc({ clusterExtra: protocolOptions({ explicit_http_config: { http_protocol_options: {} } }) })).protocol).toEqual({ kind: 'http1' });
    expect(primary(doc()).protocol).toEqual({ kind: 'http1' });
  });

  test("auto_config without TLS, or with a plaintext socket match, is Envoy's ALPN error; HTTP/1 options refused as before", () => {
    const P = `${C0}.typed_extension_protocol_options["${HPO_KEY}"]`;
    expect(issuesOf(doc({ clusterExtra: protocolOptions({ auto_config: { http_protocol_options: { enable_trailers: true } } }) }))).toEqual([
      `${P}.auto_config.http_protocol_options.enable_trailers: not supported by sidemirror`,
      `${P}.auto_config: ALPN (auto_config) configured for cluster "primary" which has a non-ALPN transport socket (auto_config needs envoy.transport_sockets.tls)`,
    ]);
    expect(issuesOf(doc({ clusterExtra: {
      ...protocolOptions({ auto_config: {} }), transport_socket: tlsSocket(),
      transport_socket_matches: [{ name: 'plain', match: {}, transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } }],
    } }))).toEqual([
      `${C0}.transport_socket_matches[0].transport_socket: ALPN (auto_config) configured for cluster "primary" which has a non-ALPN transport socket in transport_socket_matches "plain"`,
    ]);
  });
});

describe('upgrades', () => {
  test('HCM upgrade_configs: enabled types (lower case); route upgrade_configs: type → enabled', () => {
    const text = doc({
      hcm: { upgrade_configs: [{ upgrade_type: 'WebSocket' }, { upgrade_type: 'x-custom', enabled: false }] },
      action: { upgrade_configs: [{ upgrade_type: 'websocket', enabled: false }, { upgrade_type: 'x-custom' }] },
    });
    expect(hcm(text).upgradeTypes).toEqual(['websocket']);
    expect([...forward(text).upgradeConfigs]).toEqual([['websocket', false], ['x-custom', true]]);
    expect(forward(doc()).upgradeConfigs.size).toBe(0);
  });

  test("duplicates (Envoy's messages), CONNECT, upgrade filters and connect_config are refused by path", () => {
    expect(issuesOf(doc({
      hcm: { upgrade_configs: [{ upgrade_type: 'websocket' }, { upgrade_type: 'WEBSOCKET' }, { upgrade_type: 'CONNECT' }, { upgrade_type: 'h2c', filters: [{ name: 'f' }] }, {}] },
      action: { upgrade_configs: [{ upgrade_type: 'websocket' }, { upgrade_type: 'WebSocket' }, { upgrade_type: 'CONNECT', connect_config: {} }] },
    }))).toEqual([
      `${ROUTE0}.upgrade_configs[2].connect_config: not supported by sidemirror`,
      `${HCM}.upgrade_configs[3].filters: not supported by sidemirror`,
      `${ROUTE0}.upgrade_configs[1].upgrade_type: Duplicate upgrade WebSocket`,
      `${ROUTE0}.upgrade_configs[2].upgrade_type: CONNECT is not supported by sidemirror`,
      `${HCM}.upgrade_configs[1].upgrade_type: multiple upgrade configs with the same name: 'WEBSOCKET'`,
      `${HCM}.upgrade_configs[2].upgrade_type: CONNECT is not supported by sidemirror`,
      `${HCM}.upgrade_configs[4].upgrade_type: upgrade_type is required`,
    ]);
  });
});

describe('gRPC route bits', () => {
  test('match.grpc: {} sets RouteMatch.grpc', () => {
    expect(firstRoute(doc({ match: { grpc: {} } })).match.grpc).toBe(true);
    expect(firstRoute(doc()).match.grpc).toBe(false);
  });

  test('max_stream_duration leaves no route timeout, as in Envoy; the legacy fields keep it', () => {
    expect(forward(doc({ action: { timeout: '5s', max_stream_duration: {} } })).timeoutMs).toBe(0);
    expect(forward(doc({ action: { timeout: '5s', max_grpc_timeout: '1s' } })).timeoutMs).toBe(5000);
    expect(forward(doc()).timeoutMs).toBe(15_000);
  });

  test('max_stream_duration decodes; the legacy fields apply only without it (Envoy ignores them then)', () => {
    expect(forward(doc({ action: { max_stream_duration: { max_stream_duration: '30s', grpc_timeout_header_max: '10s', grpc_timeout_header_offset: '0.05s' }, max_grpc_timeout: '1s' } })).maxStreamDuration)
      .toEqual({ maxStreamDurationMs: 30_000, grpcTimeoutHeaderMaxMs: 10_000, grpcTimeoutHeaderOffsetMs: 50, legacy: false });
    expect(forward(doc({ action: { max_stream_duration: { grpc_timeout_header_max: '0s' } } })).maxStreamDuration)
      .toEqual({ maxStreamDurationMs: 0, grpcTimeoutHeaderMaxMs: 0, grpcTimeoutHeaderOffsetMs: 0, legacy: false });
    expect(forward(doc({ action: { max_grpc_timeout: '0s', grpc_timeout_offset: '0.1s' } })).maxStreamDuration)
      .toEqual({ maxStreamDurationMs: 0, grpcTimeoutHeaderMaxMs: 0, grpcTimeoutHeaderOffsetMs: 100, legacy: true });
    expect(forward(doc()).maxStreamDuration).toEqual({ maxStreamDurationMs: 0, grpcTimeoutHeaderMaxMs: null, grpcTimeoutHeaderOffsetMs: 0, legacy: false });
  });
});

describe('over the xDS wire (Envoy\'s protos)', () => {
  const envoy = loadEnvoyRoot(path.resolve(__dirname, '../..'));
  // (protobufjs declares google.protobuf.Struct's fields in camelCase, stringValue.)
  const any = (typeName: string, obj: Json): Json => {
    const t = envoy.lookupType(typeName);
    return { type_url: `type.googleapis.com/${typeName}`, value: t.encode(t.fromObject(obj)).finish() };
  };
  const encode = (typeName: string, obj: Json): Uint8Array => {
    const t = envoy.lookupType(typeName);
    return t.encode(t.fromObject(obj)).finish();
  };
  const routerFilter = { name: 'envoy.filters.http.router', typed_config: any('envoy.extensions.filters.http.router.v3.Router', {}) };

  test('a listener with SNI chains, TLS and a tls_inspector decodes; filenames are not read where the config is only checked', () => {
    const hcmAny = any('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
      stat_prefix: 'in', rds: { route_config_name: 'r', config_source: { ads: {} } }, http_filters: [routerFilter], upgrade_configs: [{ upgrade_type: 'websocket' }],
    });
    const tls = any('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
      common_tls_context: { tls_certificates: [{ certificate_chain: { filename: '/nonexistent/c.pem' }, private_key: { filename: '/nonexistent/k.pem' } }], alpn_protocols: ['h2'] },
    });
    const bytes = encode('envoy.config.listener.v3.Listener', {
      name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 8443 } },
      listener_filters: [{ name: 'tls', typed_config: any('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', {}) }],
      filter_chains: [{ name: 'sni', filter_chain_match: { server_names: ['a.example'] }, transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: tls }, filters: [{ name: 'hcm', typed_config: hcmAny }] }],
    });
    const decoded = decodeResourceBytes(LISTENER_TYPE, bytes);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.value.tlsInspector).toBe(true);
    expect(decoded.value.filterChains[0]!.tls!.common.tlsCertificates[0]!.certificateChain).toEqual({ kind: 'filename', path: '/nonexistent/c.pem' });
    expect(hcmOf(decoded.value.filterChains[0]).upgradeTypes).toEqual(['websocket']);
  });

  test('a cluster with transport_socket_matches and an EDS assignment with metadata decode; enforce_rsa_key_usage is refused', () => {
    const upstream = (o: Json): Json => ({ name: 'envoy.transport_sockets.tls', typed_config: any('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', o) });
    const c = decodeResourceBytes(CLUSTER_TYPE, encode('envoy.config.cluster.v3.Cluster', {
      name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } },
      transport_socket_matches: [{ name: 'm', match: { fields: { tlsMode: { stringValue: 'istio' } } }, transport_socket: upstream({ sni: 's' }) }],
      transport_socket: upstream({ enforce_rsa_key_usage: { value: true } }),
    }));
    expect(c.ok ? [] : c.issues).toEqual([{ path: 'Cluster "c".transport_socket.typed_config.enforce_rsa_key_usage', message: 'not supported by sidemirror' }]);
    const e = decodeResourceBytes(ENDPOINT_TYPE, encode('envoy.config.endpoint.v3.ClusterLoadAssignment', {
      cluster_name: 'c',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } }, metadata: { filter_metadata: { 'envoy.transport_socket_match': { fields: { tlsMode: { stringValue: 'istio' } } } } } }] }],
    }));
    expect(e.ok && [...e.value.endpoints[0]!.transportSocketMatch]).toEqual([['tlsMode', 'istio']]);
  });

  test('a Secret resource decodes by SECRET_TYPE; generic_secret is refused by name', () => {
    expect(SECRET_TYPE).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
    const ok = decodeSecretResourceBytes(encode('envoy.extensions.transport_sockets.tls.v3.Secret', {
      name: 'ROOTCA', validation_context: { trusted_ca: { inline_bytes: Buffer.from(certs.ca) } },
    }));
    expect(ok.ok && ok.value).toEqual({ name: 'ROOTCA', kind: 'validation_context', validationContext: { trustedCa: { kind: 'inline', bytes: Buffer.from(certs.ca) }, matchTypedSubjectAltNames: [], allowExpiredCertificate: false } });
    const bad = decodeSecretResourceBytes(encode('envoy.extensions.transport_sockets.tls.v3.Secret', { name: 'g', generic_secret: { secret: { inline_string: 'x' } } }));
    expect(bad.ok ? [] : bad.issues).toEqual([
      { path: 'Secret "g".generic_secret', message: 'not supported by sidemirror' },
      { path: 'Secret "g"', message: 'one of tls_certificate or validation_context is required' },
    ]);
    const pem = fs.readFileSync(certs.serverKeyFile, 'utf8');
    const cert = decodeSecretResourceBytes(encode('envoy.extensions.transport_sockets.tls.v3.Secret', {
      name: 'default', tls_certificate: { certificate_chain: { filename: certs.serverCertFile }, private_key: { inline_string: pem } },
    }));
    expect(cert.ok && cert.value.kind).toBe('tls_certificate');
  });
});
