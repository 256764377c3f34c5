import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { bootstrap, cluster, listener, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { allStats, echo, exchange, greeter, portOf, startTcpServer, type TcpServer, tcpListener, tcpProxyFilter } from '../harness/tcp';
import { closedPort } from '../harness/upstream';

// The TCP proxy and TLS, with certificates made at test time: passthrough routed by SNI (beside
// an HTTP chain on the same port), TLS terminated by the chain, and TLS originated towards a
// cluster with an UpstreamTlsContext, verified as configured.

type Json = Record<string, unknown>;
const TLS_INSPECTOR = { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } };
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

describe('TCP proxy: TLS', () => {
  let certs: TestCertificates;
  let p: TestProxy;
  const servers: TcpServer[] = [];
  let plainEcho: TcpServer;
  let tlsEcho: TcpServer;

  beforeAll(async () => {
    certs = makeTestCertificates();
    const aCert = issueCertificate(certs, 'a', { san: 'DNS:a.example' });
    const bCert = issueCertificate(certs, 'b', { san: 'DNS:b.example' });
    const backend = issueCertificate(certs, 'backend', { san: 'DNS:backend.internal' });
    const tlsServer = (c: { certFile: string; keyFile: string }, name: string) =>
      startTcpServer(greeter(name), { cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) });
    const serverA = await tlsServer(aCert, 'A');
    const serverB = await tlsServer(bCert, 'B');
    plainEcho = await startTcpServer(echo);
    tlsEcho = await startTcpServer(echo, { cert: readFileSync(backend.certFile), key: readFileSync(backend.keyFile) });
    servers.push(serverA, serverB, plainEcho, tlsEcho);
    const sniChain = (server: string, cluster: string): Json => ({ filter_chain_match: { server_names: [server] }, filters: [tcpProxyFilter({ stat_prefix: 'passthrough', cluster })] });
    const httpChain = (listener(routeConfig([{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'the HTTP chain' } } }])).filter_chains as Json[])[0]!;
    p = await startProxy(bootstrap({
      listeners: [
        {
          name: 'sni',
          address: { socket_address: { address: '127.0.0.1', port_value: await closedPort() } },
          listener_filters: [TLS_INSPECTOR],
          filter_chains: [
            sniChain('a.example', 'to-a'),
            sniChain('*.example', 'to-b'),
            { ...httpChain, filter_chain_match: { transport_protocol: 'raw_buffer' } },
          ],
        },
        tcpListener('terminate', await closedPort(), { stat_prefix: 'terminate', cluster: 'plain-echo' }, {
          filter_chains: [{
            filters: [tcpProxyFilter({ stat_prefix: 'terminate', cluster: 'plain-echo' })],
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: { '@type': DOWNSTREAM_TLS, common_tls_context: { tls_certificates: [{ certificate_chain: { filename: certs.serverCertFile }, private_key: { filename: certs.serverKeyFile } }] } },
            },
          }],
        }),
        tcpListener('originate', await closedPort(), { stat_prefix: 'originate', cluster: 'tls-echo' }),
        tcpListener('originate-bad', await closedPort(), { stat_prefix: 'originate_bad', cluster: 'tls-echo-wrong-name' }),
      ],
      clusters: [
        cluster('to-a', [serverA.port]),
        cluster('to-b', [serverB.port]),
        cluster('plain-echo', [plainEcho.port]),
        cluster('tls-echo', [tlsEcho.port], { transport_socket: upstreamTls('backend.internal', 'backend.internal') }),
        cluster('tls-echo-wrong-name', [tlsEcho.port], { transport_socket: upstreamTls('backend.internal', 'someone.else') }),
      ],
    }));

    function upstreamTls(sni: string, san: string): Json {
      return {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': UPSTREAM_TLS,
          sni,
          common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: san } }] } },
        },
      };
    }
  });

  afterAll(async () => {
    await p?.stop();
    for (const s of servers) await s.close();
    certs?.remove();
  });

  /** A TLS client verifying against the test CA: the certificate it got and the first line it read. */
  function tlsHello(port: number, servername: string): Promise<{ subject: string; line: string }> {
    return new Promise((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername, ca: certs.ca });
      const timer = setTimeout(() => c.destroy(new Error('no greeting within 5 s')), 5000);
      let text = '';
      c.on('data', (d: Buffer) => {
        text += d.toString();
        if (!text.includes('\n')) return;
        clearTimeout(timer);
        resolve({ subject: String(c.getPeerCertificate().subject?.CN ?? ''), line: text.split('\n')[0]! });
        c.destroy();
      });
      c.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  test('passthrough by SNI: the ClientHello goes untouched to the backend its server name picks', async () => {
    // The client verifies the backend's own certificate: the proxy never terminated TLS.
    expect(await tlsHello(portOf(p, 'sni'), 'a.example')).toEqual({ subject: 'a', line: 'A' });
    expect(await tlsHello(portOf(p, 'sni'), 'b.example')).toEqual({ subject: 'b', line: 'B' });
    // Plaintext on the same port takes the HTTP chain.
    const res = await fetchText(`http://127.0.0.1:${portOf(p, 'sni')}/`);
    expect([res.status, res.body]).toEqual([200, 'the HTTP chain']);
    expect((await allStats(p.adminUrl)).get('tcp.passthrough.downstream_cx_total')).toBe(2);
  });

  test('a chain with a transport socket terminates TLS and proxies the plaintext', async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: portOf(p, 'terminate'), servername: 'localhost', ca: certs.ca });
      let text = '';
      c.on('secureConnect', () => c.write('over tls'));
      c.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.length >= 8) {
          c.destroy();
          resolve(text);
        }
      });
      c.on('error', reject);
    });
    expect(got).toBe('over tls');
  });

  test('a cluster with an UpstreamTlsContext: TLS to the upstream, verified as configured', async () => {
    expect((await exchange(portOf(p, 'originate'), 'plain in, TLS out', { end: true })).received.toString()).toBe('plain in, TLS out');
    // A SAN that does not match: the handshake fails and the downstream is closed.
    expect((await exchange(portOf(p, 'originate-bad'), 'hello')).received.length).toBe(0);
    const s = await allStats(p.adminUrl);
    expect([s.get('cluster.tls-echo.ssl.handshake'), s.get('cluster.tls-echo-wrong-name.ssl.connection_error'), s.get('cluster.tls-echo-wrong-name.upstream_cx_connect_fail')])
      .toEqual([1, 1, 1]);
  });
});
