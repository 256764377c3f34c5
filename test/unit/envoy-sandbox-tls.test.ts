import * as fs from 'node:fs';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { ForwardAction } from '../../src/config/model';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';
import { hcmOf } from '../harness/model';

// The shapes of Envoy's sandboxes tls/, tls-sni/ and websocket/ (envoyproxy/examples), written
// here by hand with this test's own certificates: TLS termination, origination and both; SNI
// chains with a tls_inspector; WebSocket upgrades on the connection manager, on a route, and over
// TLS. Each must load; a TCP proxy chain is refused by its type, nothing else.

let certs: TestCertificates;
beforeAll(() => {
  certs = makeTestCertificates();
});
afterAll(() => certs.remove());

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

const indent = (text: string, n: number): string => text.split('\n').map((l) => (l ? ' '.repeat(n) + l : l)).join('\n');

function hcm(statPrefix: string, routes: string, extra = ''): string {
  return `- name: envoy.filters.network.http_connection_manager
  typed_config:
    "@type": ${HCM}
    stat_prefix: ${statPrefix}
${extra ? indent(extra, 4) + '\n' : ''}    route_config:
      name: local
      virtual_hosts:
      - name: app
        domains: ["*"]
        routes:
${indent(routes, 8)}
    http_filters:
    - name: envoy.filters.http.router
      typed_config: { "@type": ${ROUTER} }`;
}

const toCluster = (name: string): string => `- match: { prefix: "/" }\n  route: { cluster: ${name} }`;

function serverTls(inline: boolean): string {
  const source = (file: string): string => (inline
    ? `inline_string: |\n${indent(fs.readFileSync(file, 'utf8').trimEnd(), 6)}`
    : `filename: ${file}`);
  return `transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
    common_tls_context:
      tls_certificates:
      - certificate_chain:
${indent(source(certs.serverCertFile), 10)}
        private_key:
${indent(source(certs.serverKeyFile), 10)}`;
}

function cluster(name: string, port: number, tls: string | null): string {
  return `- name: ${name}
  type: STRICT_DNS
  lb_policy: ROUND_ROBIN
  load_assignment:
    cluster_name: ${name}
    endpoints:
    - lb_endpoints:
      - endpoint: { address: { socket_address: { address: ${name}.internal, port_value: ${port} } } }
${tls === null ? '' : indent(`transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext${tls ? `\n${indent(tls, 4)}` : ''}`, 2)}`;
}

function config(chains: string, clusters: string, listenerExtra = ''): string {
  return `static_resources:
  listeners:
  - address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
${listenerExtra ? indent(listenerExtra, 4) + '\n' : ''}    filter_chains:
${indent(chains, 4)}
  clusters:
${indent(clusters, 2)}
`;
}

const chain = (filters: string, extra = ''): string => `- ${extra ? indent(extra, 2).trimStart() + '\n  ' : ''}filters:\n${indent(filters, 4)}`;
const TLS13 = 'common_tls_context:\n  tls_params: { tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3 }';

function issues(text: string): string[] {
  try {
    loadBootstrapText(text);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
}

describe("Envoy's tls sandbox", () => {
  test('http -> https (TLS origination, TLS 1.3 only)', () => {
    const b = loadBootstrapText(config(chain(hcm('ingress_http', toCluster('service-https'))), cluster('service-https', 443, TLS13))).bootstrap;
    expect(b.clusters[0]!.tls!.common.tlsParams).toMatchObject({ minVersion: 'TLSv1_3', maxVersion: 'TLSv1_3' });
    expect(b.listeners[0]!.filterChains[0]!.tls).toBeNull();
  });

  test('https -> http (termination, inline certificate) and https -> https', () => {
    const term = loadBootstrapText(config(chain(hcm('ingress_http', toCluster('service-http')), serverTls(true)), cluster('service-http', 80, null))).bootstrap;
    expect(term.listeners[0]!.filterChains[0]!.tls!.common.tlsCertificates[0]!.certificateChain.kind).toBe('inline');
    expect(issues(config(chain(hcm('ingress_http', toCluster('service-https')), serverTls(true)), cluster('service-https', 443, TLS13)))).toEqual([]);
  });
});

describe("Envoy's tls-sni sandbox", () => {
  test('the proxy: SNI chains with a tls_inspector, and its TCP proxy chain (passthrough for domain3)', () => {
    const sniChain = (name: string, clusterName: string): string => chain(hcm('ingress_http', toCluster(clusterName)), `filter_chain_match:\n  server_names: [${name}]\n${serverTls(false)}`);
    const tcpProxy = `- filter_chain_match:\n    server_names: [domain3.example.com]\n  filters:\n  - name: envoy.filters.network.tcp_proxy\n    typed_config:\n      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n      cluster: proxy-domain3\n      stat_prefix: ingress_domain3`;
    const inspector = 'listener_filters:\n- name: envoy.filters.listener.tls_inspector\n  typed_config:\n    "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
    const clusters = [cluster('proxy-domain1', 80, null), cluster('proxy-domain2', 80, null), cluster('proxy-domain3', 443, null)].join('\n');
    const two = [sniChain('domain1.example.com', 'proxy-domain1'), sniChain('domain2.example.com', 'proxy-domain2')].join('\n');
    const l = loadBootstrapText(config(two, clusters, inspector)).bootstrap.listeners[0]!;
    expect(l.tlsInspector).toBe(true);
    expect(l.filterChains.map((c) => c.match.serverNames)).toEqual([['domain1.example.com'], ['domain2.example.com']]);
    const all = loadBootstrapText(config(`${two}\n${tcpProxy}`, clusters, inspector)).bootstrap.listeners[0]!;
    expect(all.filterChains.map((c) => [c.kind, c.match.serverNames, c.tls === null])).toEqual([
      ['http', ['domain1.example.com'], false],
      ['http', ['domain2.example.com'], false],
      ['tcp_proxy', ['domain3.example.com'], true],
    ]);
  });

  test('the client: one cluster per SNI', () => {
    const routes = ['domain1', 'domain2'].map((d) => `- match: { prefix: "/${d}" }\n  route: { cluster: proxy-client-${d} }`).join('\n');
    const clusters = ['domain1', 'domain2'].map((d) => cluster(`proxy-client-${d}`, 10000, `sni: ${d}.example.com`)).join('\n');
    const b = loadBootstrapText(config(chain(hcm('ingress_http', routes)), clusters)).bootstrap;
    expect(b.clusters.map((c) => c.tls!.sni)).toEqual(['domain1.example.com', 'domain2.example.com']);
  });
});

describe("Envoy's websocket sandbox", () => {
  const upgrade = 'upgrade_configs:\n- upgrade_type: websocket';

  test('ws on the connection manager, ws on one route, wss with TLS both ways', () => {
    const ws = loadBootstrapText(config(chain(hcm('ingress_ws_to_ws', toCluster('service_ws'), upgrade)), cluster('service_ws', 80, null))).bootstrap;
    expect(hcmOf(ws.listeners[0]!.filterChains[0]).upgradeTypes).toEqual(['websocket']);

    const routes = `- match: { prefix: "/ws" }\n  route:\n    cluster: service_ws\n${indent(upgrade, 4)}\n- match: { prefix: "/" }\n  direct_response: { status: 200, body: { inline_string: "not a websocket" } }`;
    const perRoute = loadBootstrapText(config(chain(hcm('ingress_ws_to_ws', routes)), cluster('service_ws', 80, null))).bootstrap;
    const action = hcmOf(perRoute.listeners[0]!.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!.action as ForwardAction;
    expect([...action.upgradeConfigs]).toEqual([['websocket', true]]);

    const wssText = config(chain(hcm('ingress_wss_to_wss', toCluster('service_wss'), upgrade), serverTls(true)), cluster('service_wss', 443, ''));
    expect(issues(wssText)).toEqual([]);
    const wss = loadBootstrapText(wssText).bootstrap;
    expect(wss.clusters[0]!.tls).not.toBeNull();
    expect(wss.listeners[0]!.filterChains[0]!.tls).not.toBeNull();
  });
});
