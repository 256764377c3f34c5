import { copyFileSync, renameSync } from 'node:fs';
import * as http2 from 'node:http2';
import path from 'node:path';
import * as tls from 'node:tls';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { until } from '../harness/mirror-ext';
import { startProxy, type TestProxy } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// A TLS listener's certificate file replaced on disk (by rename, as tools and Kubernetes do): new
// handshakes present the new certificate, and an HTTP/2 connection opened before keeps serving.

function serial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] }, () => {
      const serialNumber = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serialNumber);
    });
    s.on('error', reject);
  });
}

function get(session: http2.ClientHttp2Session, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': p });
    s.on('response', (h) => resolve(Number(h[':status'])));
    s.on('error', reject);
    s.resume();
  });
}

describe('certificate rotation on a TLS listener', () => {
  let certs: TestCertificates;
  let up: Upstream;
  let p: TestProxy;

  beforeAll(async () => {
    certs = makeTestCertificates();
    up = await startUpstream({ name: 'u' });
    const l = listener(routeConfig([route('/', 'u')]));
    (l.filter_chains as Array<Record<string, unknown>>)[0]!.transport_socket = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
        common_tls_context: {
          tls_certificates: [{ certificate_chain: { filename: path.join(certs.dir, 'live.crt') }, private_key: { filename: path.join(certs.dir, 'live.key') } }],
          alpn_protocols: ['h2', 'http/1.1'],
        },
      },
    };
    const first = issueCertificate(certs, 'first', { san: 'DNS:localhost' });
    copyFileSync(first.certFile, path.join(certs.dir, 'live.crt'));
    copyFileSync(first.keyFile, path.join(certs.dir, 'live.key'));
    p = await startProxy(bootstrap({ listeners: [l], clusters: [cluster('u', [up.port])] }));
  });

  afterAll(async () => {
    await p?.stop();
    await up?.close();
    certs?.remove();
  });

  test('new handshakes see the new certificate; the connection opened before still serves', async () => {
    const before = await serial(p.port, certs.ca);
    const session = http2.connect(`https://localhost:${p.port}`, { ca: certs.ca });
    expect(await get(session, '/before')).toBe(200);
    const next = issueCertificate(certs, 'second', { san: 'DNS:localhost' });
    // Key first, then the chain, each by rename: the watcher sees the pair change.
    copyFileSync(next.keyFile, path.join(certs.dir, 'live.key.tmp'));
    copyFileSync(next.certFile, path.join(certs.dir, 'live.crt.tmp'));
    renameSync(path.join(certs.dir, 'live.key.tmp'), path.join(certs.dir, 'live.key'));
    renameSync(path.join(certs.dir, 'live.crt.tmp'), path.join(certs.dir, 'live.crt'));
    let after = before;
    await until('the new certificate is served', async () => {
      after = await serial(p.port, certs.ca);
      return after !== before;
    }, 5000);
    expect(after).not.toBe(before);
    expect(await get(session, '/after')).toBe(200);
    session.close();
  });
});
