import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { until } from '../harness/mirror-ext';
import { startProxy, statValue, type TestProxy } from '../harness/proxy';
import { closedPort } from '../harness/upstream';

// TLS on both sides of the proxy with real certificates made at test time: TLS and mTLS
// listeners (ALPN h2 and http/1.1, curl as the client), SNI filter chains with the
// tls_inspector, and TLS upstreams with Envoy's verification defaults and SNI rule.

const run = promisify(execFile);
type Json = Record<string, unknown>;
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const H2 = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

let certs: TestCertificates;

function serverTls(common: Json = {}, extra: Json = {}, pair = { cert: certs.serverCertFile, key: certs.serverKeyFile }): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': DOWNSTREAM_TLS,
      common_tls_context: { tls_certificates: [{ certificate_chain: { filename: pair.cert }, private_key: { filename: pair.key } }], alpn_protocols: ['h2', 'http/1.1'], ...common },
      ...extra,
    },
  };
}

function upstreamTls(typed: Json = {}): Json {
  return { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM_TLS, ...typed } } };
}

/** A listener whose filter chains are the first chain of `listener()` with each entry's edits. */
function tlsListener(name: string, port: number, chains: Array<{ cluster: string; chain: Json }>, extra: Json = {}): Json {
  const base = (c: string) => (listener(routeConfig([route('/', c)]), { name, port }).filter_chains as Json[])[0]!;
  return { ...listener(routeConfig([route('/', 'plain')]), { name, port }), filter_chains: chains.map((c) => ({ ...base(c.cluster), ...c.chain })), ...extra };
}

/** An HTTPS upstream (h2 and HTTP/1.1 by ALPN) answering with the SNI and protocol it saw. */
async function tlsUpstream(cert: { certFile: string; keyFile: string }): Promise<{ port: number; seen: Array<{ servername: string | false; version: string; host: string }>; close(): void }> {
  const seen: Array<{ servername: string | false; version: string; host: string }> = [];
  const server = http2.createSecureServer({ cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile), allowHTTP1: true }, (req, res) => {
    const entry = { servername: (req.socket as TLSSocket).servername ?? false, version: req.httpVersion, host: String(req.headers[':authority'] ?? req.headers.host) };
    seen.push(entry);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(entry));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as AddressInfo).port, seen, close: () => server.close() };
}

async function curl(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run('curl', ['-sS', '--max-time', '5', ...args]);
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: Number(e.code ?? 1), out: e.stdout ?? '' };
  }
}

describe('TLS listeners and TLS upstreams', () => {
  let p: TestProxy;
  let plainUpstream: Awaited<ReturnType<typeof tlsUpstream>>;
  let otherUpstream: Awaited<ReturnType<typeof tlsUpstream>>;
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    certs = makeTestCertificates();
    const aCert = issueCertificate(certs, 'a', { san: 'DNS:a.example' });
    const bCert = issueCertificate(certs, 'b', { san: 'DNS:b.example' });
    const backend = issueCertificate(certs, 'backend', { san: 'DNS:backend.internal' });
    plainUpstream = await tlsUpstream(backend);
    otherUpstream = await tlsUpstream(issueCertificate(certs, 'foreign', { san: 'DNS:backend.internal', issuer: 'other-ca' }));
    for (const n of ['tls', 'mtls', 'sni', 'up']) ports[n] = await closedPort();
    const upstreamCluster = (name: string, port: number, typed: Json, extra: Json = {}) => cluster(name, [port], { ...upstreamTls(typed), ...extra });
    p = await startProxy(bootstrap({
      listeners: [
        listener(routeConfig([route('/', 'plain')]), { name: 'plain' }),
        tlsListener('tls', ports.tls!, [{ cluster: 'unverified', chain: { transport_socket: serverTls() } }]),
        tlsListener('mtls', ports.mtls!, [{
          cluster: 'unverified',
          chain: { transport_socket: serverTls({ validation_context: { trusted_ca: { filename: certs.caFile } } }, { require_client_certificate: true }) },
        }]),
        tlsListener('sni', ports.sni!, [
          { cluster: 'to-a', chain: { filter_chain_match: { server_names: ['a.example'] }, transport_socket: serverTls({}, {}, { cert: aCert.certFile, key: aCert.keyFile }) } },
          { cluster: 'to-b', chain: { filter_chain_match: { server_names: ['*.example'] }, transport_socket: serverTls({}, {}, { cert: bCert.certFile, key: bCert.keyFile }) } },
        ], { listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }] }),
        listener(routeConfig([
          route('/verified', 'verified'),
          route('/wrong-ca', 'wrong-ca'),
          route('/san-mismatch', 'san-mismatch'),
          route('/h2', 'verified-h2'),
          route('/mirrored', 'verified', { request_mirror_policies: [{ cluster: 'mirror-sni' }] }),
          route('/', 'unverified'),
        ]), { name: 'up', port: ports.up! }),
      ],
      clusters: [
        upstreamCluster('plain', plainUpstream.port, {}),
        upstreamCluster('unverified', otherUpstream.port, {}),
        upstreamCluster('to-a', plainUpstream.port, { sni: 'to-a' }),
        upstreamCluster('to-b', plainUpstream.port, { sni: 'to-b' }),
        upstreamCluster('verified', plainUpstream.port, { sni: 'backend.internal', common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile } } } }),
        upstreamCluster('wrong-ca', otherUpstream.port, { common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile } } } }),
        upstreamCluster('san-mismatch', plainUpstream.port, {
          common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'elsewhere.internal' } }] } },
        }),
        upstreamCluster('verified-h2', plainUpstream.port, { common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile } } } }, { typed_extension_protocol_options: H2 }),
        upstreamCluster('mirror-sni', plainUpstream.port, { sni: 'mirror.internal' }),
        upstreamCluster('hc-tls', plainUpstream.port, { sni: 'backend.internal' }, {
          health_checks: [{ timeout: '1s', interval: '0.2s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: '/healthz' } }],
        }),
      ],
    }));
  });

  afterAll(async () => {
    await p?.stop();
    plainUpstream?.close();
    otherUpstream?.close();
    certs?.remove();
  });

  const url = (name: string, path = '/') => `https://localhost:${ports[name]}${path}`;

  test('a TLS listener serves HTTP/2 and HTTP/1.1 by ALPN (curl --http2, --http1.1); the upstream is not verified without trusted_ca', async () => {
    const h2 = await curl(['--cacert', certs.caFile, '--http2', '-w', '\n%{http_version}', url('tls')]);
    expect(h2.code).toBe(0);
    expect(h2.out.split('\n').at(-1)).toBe('2');
    const h1 = await curl(['--cacert', certs.caFile, '--http1.1', '-w', '\n%{http_version}', url('tls')]);
    expect(h1.out.split('\n').at(-1)).toBe('1.1');
    expect(await statValue(p.adminUrl, 'listener.127.0.0.1_' + ports.tls + '.ssl.handshake')).toBeGreaterThanOrEqual(2);
  });

  test('an mTLS listener refuses a client without a certificate and serves one with a certificate from its CA', async () => {
    const without = await curl(['--cacert', certs.caFile, url('mtls')]);
    expect(without.code).not.toBe(0);
    const withCert = await curl(['--cacert', certs.caFile, '--cert', certs.clientCertFile, '--key', certs.clientKeyFile, '-w', ' %{http_code}', url('mtls')]);
    expect(withCert.out.endsWith(' 200')).toBe(true);
    await until('fail_verify_no_cert counted', async () => (await statValue(p.adminUrl, 'listener.127.0.0.1_' + ports.mtls + '.ssl.fail_verify_no_cert')) >= 1, 3000);
  });

  test('SNI picks the filter chain (exact before wildcard), each with its own certificate and routes', async () => {
    const a = await curl(['--cacert', certs.caFile, '--resolve', `a.example:${ports.sni}:127.0.0.1`, `https://a.example:${ports.sni}/`]);
    expect(JSON.parse(a.out).servername).toBe('to-a');
    const b = await curl(['--cacert', certs.caFile, '--resolve', `b.example:${ports.sni}:127.0.0.1`, `https://b.example:${ports.sni}/`]);
    expect(JSON.parse(b.out).servername).toBe('to-b');
    // No chain for another name: the connection is closed.
    const none = await curl(['-k', '--resolve', `c.other:${ports.sni}:127.0.0.1`, `https://c.other:${ports.sni}/`]);
    expect(none.code).not.toBe(0);
  });

  test('upstream TLS: verified with trusted_ca and sni, refused by a wrong CA or a SAN mismatch (503), h2 by explicit config', async () => {
    const base = `http://127.0.0.1:${ports.up}`;
    const ok = await curl([`${base}/verified`]);
    expect(JSON.parse(ok.out)).toMatchObject({ servername: 'backend.internal', version: '1.1' });
    expect((await curl(['-o', '/dev/null', '-w', '%{http_code}', `${base}/wrong-ca`])).out).toBe('503');
    expect((await curl(['-o', '/dev/null', '-w', '%{http_code}', `${base}/san-mismatch`])).out).toBe('503');
    const h2 = await curl([`${base}/h2`]);
    // No sni configured: none sent, whatever the Host (Envoy's rule; Node would send the host).
    expect(JSON.parse(h2.out)).toMatchObject({ servername: false, version: '2.0' });
    // Unverified (no validation context): a certificate from a CA nobody trusts is accepted, as Envoy does.
    expect((await curl(['-o', '/dev/null', '-w', '%{http_code}', `${base}/anything`])).out).toBe('200');
  });

  test('active health checks go over the cluster\'s TLS, with its SNI', async () => {
    await until('a TLS health check passed', async () => (await statValue(p.adminUrl, 'cluster.hc-tls.health_check.success')) >= 1, 5000);
    expect(plainUpstream.seen.some((s) => s.servername === 'backend.internal')).toBe(true);
  });

  test("a mirror cluster's SNI is its own, never the -shadow host", async () => {
    const before = plainUpstream.seen.length;
    await curl(['-H', 'host: api.example', `http://127.0.0.1:${ports.up}/mirrored`]);
    await until('the shadow arrived', () => plainUpstream.seen.slice(before).some((s) => s.host === 'api-shadow.example' || s.host.includes('-shadow')), 3000);
    const shadow = plainUpstream.seen.slice(before).find((s) => s.host.includes('-shadow'))!;
    expect(shadow.servername).toBe('mirror.internal');
  });
});
