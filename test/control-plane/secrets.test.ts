import * as fs from 'node:fs';
import { ConfigError } from '../../src/config/errors';
import { LISTENER_TYPE, SECRET_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { HCM_TYPE, ROUTER_TYPE } from '../harness/bootstrap';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { XdsTestClient } from './xds-client';

// Secrets in the control plane's resources: served over ADS by name only (SDS is not a wildcard
// type), and part of the consistency check: a listener or cluster naming an ADS secret the
// snapshot lacks, or one of the wrong kind, is refused like a route to a missing cluster.

type Json = Record<string, unknown>;

let certs: TestCertificates;
let leaf: IssuedCertificate;
let cp: ControlPlane | null = null;
let clients: XdsTestClient[] = [];

beforeAll(() => {
  certs = makeTestCertificates();
  leaf = issueCertificate(certs, 'cp-leaf', { san: 'DNS:localhost' });
});
afterAll(() => certs.remove());
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await cp?.close();
  cp = null;
});

const certSecret = (name: string): Json => ({
  '@type': SECRET_TYPE, name,
  tls_certificate: { certificate_chain: { inline_string: leaf.cert }, private_key: { inline_string: fs.readFileSync(leaf.keyFile, 'utf8') } },
});
const caSecret = (name: string): Json => ({ '@type': SECRET_TYPE, name, validation_context: { trusted_ca: { inline_string: certs.ca } } });

/** A TLS listener whose certificate is the ADS secret `certName` and whose client CA is `caName`. */
const listener = (certName: string, caName?: string): Json => ({
  '@type': LISTENER_TYPE,
  name: 'tls',
  address: { socket_address: { address: '127.0.0.1', port_value: 10443 } },
  filter_chains: [{
    transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: certName, sds_config: { ads: {} } }],
        ...(caName ? { validation_context_sds_secret_config: { name: caName, sds_config: { ads: {} } } } : {}),
      },
    } },
    filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': HCM_TYPE, stat_prefix: 'tls',
      route_config: { name: 'r', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200 } }] }] },
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
    } }],
  }],
});

const doc = (resources: Json[], extra: Json = {}): string => JSON.stringify({ version_info: 'v1', resources, ...extra });

async function start(resources: Json[]): Promise<ControlPlane> {
  cp = await startControlPlane({ initialText: doc(resources), listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger() });
  return cp;
}

function issuesOf(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => ({ path: i.path, message: i.message }));
    throw err;
  }
  throw new Error('expected a ConfigError');
}

test('secrets are served by name only, never as a wildcard', async () => {
  await start([certSecret('a'), certSecret('b'), listener('a')]);
  const c = new XdsTestClient(cp!.port);
  clients.push(c);
  c.send({ node: { id: 'n1', cluster: 'x' }, type_url: SECRET_TYPE, resource_names: [] });
  await c.expectNothing(200);
  c.send({ type_url: SECRET_TYPE, resource_names: ['a'] });
  const r = await c.next();
  expect(r.type_url).toBe(SECRET_TYPE);
  expect(r.names).toEqual(['a']);
  expect((r.resources[0]!.value.tls_certificate as Json).certificate_chain).toBeDefined();
  // The ACK is recorded under "sds".
  c.send({ type_url: SECRET_TYPE, resource_names: ['a'], version_info: r.version_info, response_nonce: r.nonce });
  await c.expectNothing(100);
  expect((cp!.status.toJSON().n1 as { types: Record<string, { acked_version: string }> }).types.sds!.acked_version).toBe(r.version_info);
});

test('a listener naming a missing or wrong-kind ADS secret makes the snapshot inconsistent', async () => {
  await start([certSecret('a'), listener('a')]);
  const missing = issuesOf(() => cp!.setResourcesText(doc([listener('gone')])));
  expect(missing).toEqual([{
    path: 'resources[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name',
    message: 'listener "tls" uses Secret "gone" (sds_config: { ads: {} }), which does not exist',
  }]);
  const wrongKind = issuesOf(() => cp!.setResourcesText(doc([caSecret('a'), listener('a', 'a')])));
  expect(wrongKind).toEqual([{
    path: 'resources[1].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name',
    message: 'listener "tls": secret "a" is a validation_context, but this reference needs a tls_certificate (resources[0])',
  }]);
  expect(cp!.setResourcesText(doc([certSecret('a'), caSecret('ca'), listener('a', 'ca')]))).toBe('v1-2');
});

test('an override may not change the kind of a secret name', async () => {
  await start([certSecret('a'), listener('a')]);
  const issues = issuesOf(() => cp!.setResourcesText(doc([certSecret('a'), listener('a')], { node_overrides: [{ node: { id: 'n2' }, resources: [caSecret('a')] }] })));
  expect(issues).toEqual([expect.objectContaining({
    path: 'node_overrides[0].resources[0]',
    message: expect.stringContaining('Secret "a" is a validation_context here but a tls_certificate at resources[0]'),
  })]);
});
