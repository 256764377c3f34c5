import * as path from 'node:path';
import { CLUSTER_TYPE, LISTENER_TYPE, decodeResourceBytes } from '../../src/config/resources';
import { loadEnvoyRoot } from '../../scripts/envoy-fields';

// Over xDS a resource arrives as bytes, and protobuf decoding skips what proto/ does not declare.
// Encoded here with Envoy's real protos (@grpc/grpc-js-xds, test time only), the fields we leave
// out must reject the resource by path, as they do in YAML.

const envoy = loadEnvoyRoot(path.resolve(__dirname, '../..'));
const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function any(typeName: string, obj: Record<string, unknown>): { type_url: string; value: Uint8Array } {
  const t = envoy.lookupType(typeName);
  return { type_url: `type.googleapis.com/${typeName}`, value: t.encode(t.fromObject(obj)).finish() };
}

function listenerBytes(extraChain: Record<string, unknown>, extraHcm: Record<string, unknown>): Uint8Array {
  const hcm = any(HCM, {
    stat_prefix: 'ingress', rds: { route_config_name: 'r', config_source: { ads: {} } },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: any('envoy.extensions.filters.http.router.v3.Router', {}) }],
    ...extraHcm,
  });
  const Listener = envoy.lookupType('envoy.config.listener.v3.Listener');
  return Listener.encode(Listener.fromObject({
    name: 'l0',
    address: { socket_address: { address: '127.0.0.1', port_value: 10000 } },
    filter_chains: [{ filters: [{ name: 'hcm', typed_config: hcm }], ...extraChain }],
  })).finish();
}

test('a plain listener decodes', () => {
  expect(decodeResourceBytes(LISTENER_TYPE, listenerBytes({}, {})).ok).toBe(true);
});

test('undeclared fields of filter_chain_match, the TLS context inside transport_socket and the HCM are refused by path', () => {
  const tlsContext = any('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
    common_tls_context: { tls_certificates: [{ certificate_chain: { filename: '/etc/c.pem' }, private_key: { filename: '/etc/k.pem' } }] },
    ocsp_staple_policy: 'MUST_STAPLE',
  });
  const decoded = decodeResourceBytes(LISTENER_TYPE, listenerBytes(
    { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: tlsContext }, filter_chain_match: { server_names: ['a.example'], destination_port: { value: 443 } } },
    { tracing: { random_sampling: { value: 10 } } },
  ));
  expect(decoded.ok).toBe(false);
  expect(decoded.ok ? [] : decoded.issues).toEqual([
    { path: 'Listener "l0".filter_chains[0].filter_chain_match.destination_port', message: 'not supported by sidemirror' },
    { path: 'Listener "l0".filter_chains[0].filters[0].typed_config.tracing', message: 'not supported by sidemirror' },
    { path: 'Listener "l0".filter_chains[0].transport_socket.typed_config.ocsp_staple_policy', message: 'not supported by sidemirror' },
  ]);
});

test('a cluster\'s outlier_detection decodes from the wire; what sidemirror leaves out of it and of common_lb_config is refused by path', () => {
  const Cluster = envoy.lookupType('envoy.config.cluster.v3.Cluster');
  const cluster = (extra: Record<string, unknown>): Uint8Array => Cluster.encode(Cluster.fromObject({
    name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, ...extra,
  })).finish();
  const plain = decodeResourceBytes(CLUSTER_TYPE, cluster({
    outlier_detection: { consecutive_5xx: { value: 7 }, interval: { seconds: 2 } }, common_lb_config: { healthy_panic_threshold: { value: 25 } },
  }));
  expect(plain.ok).toBe(true);
  const refused = decodeResourceBytes(CLUSTER_TYPE, cluster({
    outlier_detection: { consecutive_5xx: { value: 7 }, monitors: [{ name: 'm', typed_config: any('envoy.config.core.v3.Locality', {}) }] },
    common_lb_config: { zone_aware_lb_config: {} },
  }));
  expect(refused.ok ? [] : refused.issues).toEqual([
    { path: 'Cluster "c".outlier_detection.monitors', message: 'not supported by sidemirror' },
    { path: 'Cluster "c".common_lb_config.zone_aware_lb_config', message: 'not supported by sidemirror' },
  ]);
});
