import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { type TestProxy, startProxy } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// The rbac filter's authenticated principal over real mTLS: certificates made here with openssl,
// a listener that requires a client certificate, and clients that present different identities.

type Json = Record<string, unknown>;
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';

let certs: TestCertificates;
let upstream: Upstream;
let proxy: TestProxy;
let port: number;

beforeAll(async () => {
  certs = makeTestCertificates();
  upstream = await startUpstream({ name: 'upstream' });
  const rbac = {
    name: 'envoy.filters.http.rbac',
    typed_config: {
      '@type': RBAC,
      rules: { action: 'ALLOW', policies: { orders: { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: 'spiffe://td/ns/shop/sa/orders' } } }] } } },
    },
  };
  const l = listener(routeConfig([route('/', 'backend')]), { hcm: { http_filters: [rbac, { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }] } });
  const chain = (l.filter_chains as Json[])[0]!;
  chain.transport_socket = {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': DOWNSTREAM_TLS,
      require_client_certificate: true,
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { filename: certs.serverCertFile }, private_key: { filename: certs.serverKeyFile } }],
        validation_context: { trusted_ca: { filename: certs.caFile } },
      },
    },
  };
  proxy = await startProxy(bootstrap({ listeners: [l], clusters: [cluster('backend', [upstream.port])] }));
  port = proxy.port;
});

afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
  certs?.remove();
});

async function getAs(san: string): Promise<number> {
  const id = issueCertificate(certs, `client-${san.replace(/\W/g, '')}`, { san });
  const agent = new Agent({ connect: { ca: certs.ca, cert: id.cert, key: readFileSync(id.keyFile, 'utf8'), servername: 'localhost' } });
  try {
    const res = await request(`https://127.0.0.1:${port}/`, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.text();
    return res.statusCode;
  } finally {
    await agent.close();
  }
}

test('the client certificate\'s URI SAN is the principal: orders may, payments may not', async () => {
  expect(await getAs('URI:spiffe://td/ns/shop/sa/orders')).toBe(200);
  expect(await getAs('URI:spiffe://td/ns/shop/sa/payments')).toBe(403);
});

test('a DNS SAN counts when no URI SAN matches', async () => {
  expect(await getAs('DNS:spiffe://td/ns/shop/sa/orders')).toBe(200);
  expect(await getAs('DNS:orders.shop')).toBe(403);
});
