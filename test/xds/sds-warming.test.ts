import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, LISTENER_TYPE, SECRET_TYPE } from '../../src/config/resources';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { type RawAdsServer, type SeenRequest, startRawAdsServer } from '../harness/ads-server';
import { HCM_TYPE, ROUTER_TYPE, cluster, xdsSidecarBootstrap } from '../harness/bootstrap';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// The sidecar's side of SDS, against a bare ADS server that sends exactly what the test says:
// secrets are asked for by name after the listener naming them is ACKed, the listener warms
// (does not serve) until its secret arrives, a secret of the wrong kind is NACKed, and a listener
// moving to another secret keeps serving on the old one until the new one is there.

type Json = Record<string, unknown>;

const LISTENER = 'tls_listener';

const tlsListener = (secretName: string): Json => ({
  '@type': LISTENER_TYPE,
  name: LISTENER,
  address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{
    transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      common_tls_context: { tls_certificate_sds_secret_configs: [{ name: secretName, sds_config: { ads: {}, resource_api_version: 'V3' } }] },
    } },
    filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': HCM_TYPE, stat_prefix: 'tls_http',
      route_config: { name: 'local', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] }] },
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
    } }],
  }],
});

const certSecret = (name: string, c: IssuedCertificate): Json => ({
  '@type': SECRET_TYPE, name,
  tls_certificate: { certificate_chain: { inline_string: c.cert }, private_key: { inline_string: fs.readFileSync(c.keyFile, 'utf8') } },
});

let certs: TestCertificates;
let first: IssuedCertificate;
let second: IssuedCertificate;
let ads: RawAdsServer;
let upstream: Upstream;
let sidecar: Proxy | null;

beforeAll(() => {
  certs = makeTestCertificates();
  first = issueCertificate(certs, 'warm-1', { san: 'DNS:localhost' });
  second = issueCertificate(certs, 'warm-2', { san: 'DNS:localhost' });
});
afterAll(() => certs.remove());

beforeEach(async () => {
  ads = await startRawAdsServer();
  upstream = await startUpstream({ name: 'backend' });
  sidecar = null;
});

afterEach(async () => {
  await sidecar?.stop();
  await ads.close();
  await upstream.close();
});

const serial = (c: IssuedCertificate): string => new X509Certificate(c.cert).serialNumber;

function presentedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca }, () => {
      const sn = s.getPeerCertificate().serialNumber ?? '';
      s.destroy();
      resolve(sn);
    });
    s.once('error', reject);
    s.setTimeout(3000, () => s.destroy(new Error('handshake timed out')));
  });
}

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const started = Date.now();
  for (let i = 0; Date.now() - started < timeoutMs && i < 1000; i++) {
    if (await probe()) return;
    await sleep(25);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

const isSds = (r: SeenRequest): boolean => r.type_url === SECRET_TYPE;
const names = (r: SeenRequest): string => [...r.resource_names].sort().join(',');

test('a TLS listener warms until its SDS secret arrives; a wrong-kind secret is NACKed', async () => {
  sidecar = await Proxy.start({ loaded: loadBootstrapText(xdsSidecarBootstrap({ nodeId: 'warm', cpPort: ads.port })), logger: silentLogger(), initialFetchTimeoutMs: 50, drainTimeoutMs: 200 });
  const p = sidecar;
  // 1. Clusters, then the listener naming secret "late_cert".
  await ads.waitFor((r) => r.type_url === CLUSTER_TYPE);
  ads.push(CLUSTER_TYPE, 'c1', [{ '@type': CLUSTER_TYPE, ...cluster('backend', [upstream.port]) }]);
  await ads.waitFor((r) => r.type_url === LISTENER_TYPE);
  ads.push(LISTENER_TYPE, 'l1', [tlsListener('late_cert')]);

  // 2. The secret is asked for by name, after the LDS ACK; the listener does not serve yet.
  const sdsRequest = await ads.waitFor((r) => isSds(r) && names(r) === 'late_cert');
  const ldsAck = ads.requests.findIndex((r) => r.type_url === LISTENER_TYPE && r.version_info === 'l1');
  expect(ldsAck).toBeGreaterThanOrEqual(0);
  expect(ads.requests.indexOf(sdsRequest)).toBeGreaterThan(ldsAck);
  await sleep(200);
  expect(p.listeners.names()).not.toContain(LISTENER);

  // 3. A validation context under that name is NACKed; still nothing served.
  ads.push(SECRET_TYPE, 's1', [{ '@type': SECRET_TYPE, name: 'late_cert', validation_context: { trusted_ca: { inline_string: certs.ca } } }]);
  const nack = await ads.waitFor((r) => isSds(r) && r.error_detail !== undefined && r.error_detail !== null);
  expect(nack.error_detail!.message).toContain('secret "late_cert" is a validation_context, but this reference needs a tls_certificate');
  expect(nack.version_info).toBe('');
  expect(p.listeners.names()).not.toContain(LISTENER);

  // 4. The certificate arrives: ACK, and the listener serves with it.
  ads.push(SECRET_TYPE, 's2', [certSecret('late_cert', first)]);
  await ads.waitFor((r) => isSds(r) && r.version_info === 's2' && !r.error_detail);
  await until('listener serving', () => p.listeners.names().includes(LISTENER));
  expect(await presentedSerial(p.listenerPort(LISTENER))).toBe(serial(first));
  expect([...p.xds!.config.secrets.keys()]).toEqual(['late_cert']);
});

test('a listener moving to another secret keeps serving on the old one until the new one arrives', async () => {
  sidecar = await Proxy.start({ loaded: loadBootstrapText(xdsSidecarBootstrap({ nodeId: 'move', cpPort: ads.port })), logger: silentLogger(), initialFetchTimeoutMs: 50, drainTimeoutMs: 200 });
  const p = sidecar;
  await ads.waitFor((r) => r.type_url === CLUSTER_TYPE);
  ads.push(CLUSTER_TYPE, 'c1', [{ '@type': CLUSTER_TYPE, ...cluster('backend', [upstream.port]) }]);
  await ads.waitFor((r) => r.type_url === LISTENER_TYPE);
  ads.push(LISTENER_TYPE, 'l1', [tlsListener('cert_a')]);
  await ads.waitFor((r) => isSds(r) && names(r) === 'cert_a');
  ads.push(SECRET_TYPE, 's1', [certSecret('cert_a', first)]);
  await until('listener serving', () => p.listeners.names().includes(LISTENER));
  const port = p.listenerPort(LISTENER);
  expect(await presentedSerial(port)).toBe(serial(first));

  // 1. The listener now names cert_b: both stay subscribed while it warms, and A is served.
  ads.push(LISTENER_TYPE, 'l2', [tlsListener('cert_b')]);
  await ads.waitFor((r) => isSds(r) && names(r) === 'cert_a,cert_b');
  expect(await presentedSerial(port)).toBe(serial(first));

  // 2. cert_b arrives: the listener takes it, and cert_a is let go.
  ads.push(SECRET_TYPE, 's2', [certSecret('cert_b', second)]);
  await until('B served', async () => (await presentedSerial(port)) === serial(second));
  await ads.waitFor((r) => isSds(r) && names(r) === 'cert_b');
  expect([...p.xds!.config.secrets.keys()]).toEqual(['cert_b']);
  expect(p.listenerPort(LISTENER)).toBe(port);
});

test('a static listener of the bootstrap naming an ADS secret gets it over the stream', async () => {
  const b = JSON.parse(xdsSidecarBootstrap({ nodeId: 'boot', cpPort: ads.port })) as { static_resources: { listeners?: Json[]; clusters: Json[] } };
  const { '@type': _t, ...staticListener } = tlsListener('boot_cert');
  b.static_resources.listeners = [staticListener];
  b.static_resources.clusters.push(cluster('backend', [upstream.port]));
  sidecar = await Proxy.start({ loaded: loadBootstrapText(JSON.stringify(b)), logger: silentLogger(), initialFetchTimeoutMs: 50, drainTimeoutMs: 200 });
  const p = sidecar;
  // Asked for with the stream's first requests, before any CDS or LDS response.
  await ads.waitFor((r) => isSds(r) && names(r) === 'boot_cert');
  expect(ads.requests.some((r) => r.response_nonce !== '')).toBe(false);
  const port = p.listenerPort(LISTENER);
  ads.push(SECRET_TYPE, 's1', [certSecret('boot_cert', first)]);
  await until('the static listener presenting the secret', async () => (await presentedSerial(port).catch(() => '')) === serial(first));
});
