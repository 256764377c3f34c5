import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';
import { until } from '../harness/mirror-ext';
import { fetchText, startProxy, type TestProxy } from '../harness/proxy';

// How a cluster picks its upstream protocol and transport socket: use_downstream_protocol_config
// (the client's protocol, for primaries and mirrors alike), auto_config (ALPN), and
// transport_socket_matches (TLS for endpoints whose metadata says so, plaintext for the others).

type Seen = { version: string; tls: boolean; path: string };

/** An upstream serving HTTP/1.1 and h2c on one port (TLS too when given certificates), recording what it saw. */
async function dualUpstream(certs?: TestCertificates): Promise<{ port: number; seen: Seen[]; close(): void }> {
  const seen: Seen[] = [];
  const answer = (version: string, secure: boolean, path: string, end: (body: string) => void): void => {
    seen.push({ version, tls: secure, path });
    end(version);
  };
  const h1 = http.createServer((req, res) => answer(req.httpVersion, Boolean((req.socket as tls.TLSSocket).encrypted), req.url ?? '', (b) => res.end(b)));
  const h2 = http2.createServer();
  h2.on('request', (req, res) => answer(req.httpVersion, Boolean((req.socket as tls.TLSSocket).encrypted), req.url, (b) => res.end(b)));
  const hand = (socket: net.Socket | tls.TLSSocket, h2first: boolean): void => {
    (h2first ? h2 : h1).emit('connection', socket);
  };
  const secure = certs ? tls.createServer({ cert: readFileSync(certs.serverCertFile), key: readFileSync(certs.serverKeyFile), ALPNProtocols: ['h2', 'http/1.1'] }) : null;
  secure?.on('secureConnection', (s: tls.TLSSocket) => hand(s, s.alpnProtocol === 'h2'));
  const server = net.createServer((socket) => {
    if (secure) return void secure.emit('connection', socket);
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      // Not from inside the 'data' handler: an HTTP/2 session made there loses the bytes put back.
      setImmediate(() => {
        hand(socket, first.toString('latin1', 0, 3) === 'PRI');
        socket.resume();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => server.close() };
}

const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const protocolOptions = (o: Record<string, unknown>) => ({
  typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, ...o } },
});
const UPSTREAM_TLS = { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext' } };

function h2get(url: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const s = session.request({ ':path': path });
    let body = '';
    s.on('data', (c: Buffer) => (body += c.toString()));
    s.on('end', () => {
      session.close();
      resolve(body);
    });
    s.on('error', reject);
  });
}

describe('upstream protocol and transport socket selection', () => {
  let certs: TestCertificates;
  let plain: Awaited<ReturnType<typeof dualUpstream>>;
  let secure: Awaited<ReturnType<typeof dualUpstream>>;
  let p: TestProxy;

  beforeAll(async () => {
    certs = makeTestCertificates();
    plain = await dualUpstream();
    secure = await dualUpstream(certs);
    const mixed = cluster('mixed', [], {
      load_assignment: {
        cluster_name: 'mixed',
        endpoints: [{ lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: secure.port } } }, metadata: { filter_metadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' } } } },
          { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: plain.port } } } },
        ] }],
      },
      transport_socket_matches: [
        { name: 'tls', match: { tlsMode: 'istio' }, transport_socket: UPSTREAM_TLS },
        { name: 'plaintext', match: {}, transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } } },
      ],
    });
    p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([
        route('/follow', 'follow', { request_mirror_policies: [{ cluster: 'follow' }] }),
        route('/auto', 'auto'),
        route('/mixed', 'mixed'),
      ]))],
      clusters: [
        cluster('follow', [plain.port], protocolOptions({ use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} } })),
        cluster('auto', [secure.port], { ...protocolOptions({ auto_config: { http_protocol_options: {}, http2_protocol_options: {} } }), transport_socket: UPSTREAM_TLS }),
        mixed,
      ],
    }));
  });

  afterAll(async () => {
    await p?.stop();
    plain?.close();
    secure?.close();
    certs?.remove();
  });

  test('use_downstream_protocol_config: HTTP/1.1 in, HTTP/1.1 out; h2c in, HTTP/2 out — for the primary and its mirror', async () => {
    expect((await fetchText(`${p.url}/follow/1`)).body).toBe('1.1');
    expect(await h2get(p.url, '/follow/2')).toBe('2.0');
    await until('both shadows arrived', () => plain.seen.filter((s) => s.path.startsWith('/follow')).length === 4, 3000);
    const byPath = (path: string) => plain.seen.filter((s) => s.path === path).map((s) => s.version);
    expect(byPath('/follow/1')).toEqual(['1.1', '1.1']);
    expect(byPath('/follow/2')).toEqual(['2.0', '2.0']);
  });

  test('auto_config: the endpoint offers h2 by ALPN, and HTTP/2 over TLS is used', async () => {
    expect((await fetchText(`${p.url}/auto`)).body).toBe('2.0');
    expect(secure.seen.at(-1)).toMatchObject({ version: '2.0', tls: true });
  });

  test('transport_socket_matches: TLS to the endpoint whose metadata matches, plaintext to the other', async () => {
    for (let i = 0; i < 4; i++) expect((await fetchText(`${p.url}/mixed`)).status).toBe(200);
    expect(secure.seen.filter((s) => s.path === '/mixed').every((s) => s.tls)).toBe(true);
    expect(secure.seen.filter((s) => s.path === '/mixed')).toHaveLength(2);
    expect(plain.seen.filter((s) => s.path === '/mixed').every((s) => !s.tls)).toBe(true);
    expect(plain.seen.filter((s) => s.path === '/mixed')).toHaveLength(2);
  });
});
