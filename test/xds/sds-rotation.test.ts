import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, LISTENER_TYPE, SECRET_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { HCM_TYPE, ROUTER_TYPE, cluster, xdsSidecarBootstrap } from '../harness/bootstrap';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Certificate rotation through SDS over ADS, for real: our control plane serves a Secret from
// its resources file, the sidecar's TLS listener names it with `sds_config: { ads: {} }`, and
// real TLS clients see which certificate each new handshake presents. Rewriting the file
// rotates the certificate; connections opened before (HTTP/1.1 keep-alive, HTTP/2) go on.

type Json = Record<string, unknown>;

const LISTENER = 'tls_listener';
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

const secret = (name: string, c: IssuedCertificate): Json => ({
  '@type': SECRET_TYPE,
  name,
  tls_certificate: { certificate_chain: { inline_string: c.cert }, private_key: { inline_string: fs.readFileSync(c.keyFile, 'utf8') } },
});

const tlsListener = (secretName: string): Json => ({
  '@type': LISTENER_TYPE,
  name: LISTENER,
  address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': DOWNSTREAM_TLS,
        common_tls_context: {
          alpn_protocols: ['h2', 'http/1.1'],
          tls_certificate_sds_secret_configs: [{ name: secretName, sds_config: { ads: {}, resource_api_version: 'V3' } }],
        },
      },
    },
    filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': HCM_TYPE, stat_prefix: 'tls_http', codec_type: 'AUTO',
      route_config: { name: 'local', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] }] },
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
    } }],
  }],
});

let certs: TestCertificates;
let certA: IssuedCertificate;
let certB: IssuedCertificate;
let dir: string;
let file: string;
let upstream: Upstream;
let cp: ControlPlane | null;
let cpLog: string[];
let sidecar: Proxy | null;

const serial = (c: IssuedCertificate): string => new X509Certificate(c.cert).serialNumber;
const doc = (list: Json[]): string => JSON.stringify({ version_info: 'v1', resources: list });
const resources = (c: IssuedCertificate, extra: Json[] = []): Json[] => [
  secret('server_cert', c), tlsListener('server_cert'), { '@type': CLUSTER_TYPE, ...cluster('backend', [upstream.port]) }, ...extra,
];

function capturingLogger(): pino.Logger {
  const lines: string[] = (cpLog = []);
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb(); } });
  return pino({ level: 'debug' }, sink);
}

/** The serial of the certificate a new TLS handshake with the listener presents. */
function presentedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca, ALPNProtocols: ['http/1.1'] }, () => {
      const sn = s.getPeerX509Certificate()?.serialNumber ?? '';
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
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** One GET over an HTTP/1.1 keep-alive agent: status, body and the local port of the socket used. */
function h1Get(agent: https.Agent, port: number, pathname: string): Promise<{ status: number; body: string; localPort: number; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: pathname, agent, servername: 'localhost', ca: certs.ca }, (res) => {
      // Read now: at 'end' a keep-alive socket is already back in the agent's pool.
      const socket = res.socket as tls.TLSSocket;
      const seen = { localPort: socket.localPort ?? 0, serial: socket.getPeerCertificate().serialNumber ?? '' };
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...seen }));
    });
    req.once('error', reject);
    req.end();
  });
}

function h2Get(session: http2.ClientHttp2Session, pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': pathname, ':authority': 'localhost' });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => resolve({ status, body }));
    stream.once('error', reject);
    stream.end();
  });
}

beforeAll(() => {
  certs = makeTestCertificates();
  certA = issueCertificate(certs, 'sds-a', { san: 'DNS:localhost' });
  certB = issueCertificate(certs, 'sds-b', { san: 'DNS:localhost' });
});
afterAll(() => certs.remove());

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-sds-'));
  file = path.join(dir, 'resources.yaml');
  cp = null;
  sidecar = null;
  upstream = await startUpstream({ name: 'backend' });
});

afterEach(async () => {
  await sidecar?.stop();
  await cp?.close();
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function startAll(list: Json[]): Promise<Proxy> {
  fs.writeFileSync(file, doc(list));
  cp = await startControlPlane({ resourcesFile: file, listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, logger: capturingLogger(), watchDebounceMs: 20 });
  sidecar = await Proxy.start({ loaded: loadBootstrapText(xdsSidecarBootstrap({ nodeId: 'sds', cpPort: cp.port })), logger: silentLogger(), initialFetchTimeoutMs: 5000, drainTimeoutMs: 200 });
  await sidecar.xds!.config.ready;
  return sidecar;
}

test('a rewritten Secret rotates the listener certificate; connections opened before keep working', async () => {
  const p = await startAll(resources(certA));
  const port = p.listenerPort(LISTENER);
  // 1. New handshakes present A; an HTTP/1.1 keep-alive connection and an HTTP/2 one are opened.
  expect(await presentedSerial(port)).toBe(serial(certA));
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: certs.ca, servername: 'localhost' });
  session.on('error', () => undefined);
  try {
    const first = await h1Get(agent, port, '/h1-before');
    expect(first).toMatchObject({ status: 200, body: 'backend', serial: serial(certA) });
    expect(await h2Get(session, '/h2-before')).toEqual({ status: 200, body: 'backend' });

    // 2. The file now holds certificate B under the same secret name.
    fs.writeFileSync(file, doc(resources(certB)));
    await until('a new handshake presents B', async () => (await presentedSerial(port)) === serial(certB));

    // 3. The connections opened before carry on, on the same sockets, with A.
    const again = await h1Get(agent, port, '/h1-after');
    expect(again).toMatchObject({ status: 200, body: 'backend', serial: serial(certA), localPort: first.localPort });
    expect(await h2Get(session, '/h2-after')).toEqual({ status: 200, body: 'backend' });
    expect((session.socket as unknown as tls.TLSSocket).getPeerX509Certificate()?.serialNumber).toBe(serial(certA));
    expect(upstream.requests.map((r) => r.url).sort()).toEqual(['/h1-after', '/h1-before', '/h2-after', '/h2-before']);
  } finally {
    agent.destroy();
    session.destroy();
  }
  // The listener was updated in place, not rebound, and the sidecar ACKed SDS.
  expect(p.listenerPort(LISTENER)).toBe(port);
  const nodes = (): Record<string, { types: Record<string, { acked_version: string | null } | undefined> } | undefined> => cp!.status.toJSON() as never;
  await until('SDS ACK of the new version', () => nodes().sds?.types.sds?.acked_version === cp!.cache.version);
});

test('the private key never shows in the control plane log or its admin /snapshot and /nodes', async () => {
  await startAll(resources(certA));
  const keyText = fs.readFileSync(certA.keyFile, 'utf8');
  const keyBody = keyText.split('\n')[1]!;
  const snap = await (await fetch(`http://127.0.0.1:${cp!.adminPort}/snapshot`)).text();
  const secretJson = (JSON.parse(snap) as { resources: Json[] }).resources.find((r) => r['@type'] === SECRET_TYPE) as { tls_certificate: Json };
  expect(secretJson.tls_certificate.private_key).toEqual({ inline_string: '[redacted]' });
  expect(snap).not.toContain(keyBody);
  expect(snap).toContain(certA.cert.split('\n')[1]!);
  expect(cpLog.join('\n')).not.toContain(keyBody);
  expect(JSON.stringify(await (await fetch(`http://127.0.0.1:${cp!.adminPort}/nodes`)).json())).not.toContain(keyBody);
});

test('the control plane refuses a listener naming an ADS secret its snapshot lacks, and keeps serving the last one', async () => {
  const p = await startAll(resources(certA));
  const before = cp!.cache.version;
  const list = resources(certA).filter((r) => r['@type'] !== SECRET_TYPE);
  expect(() => cp!.setResourcesText(doc(list))).toThrow(/listener "tls_listener" uses Secret "server_cert" \(sds_config: \{ ads: \{\} \}\), which does not exist/);
  expect(cp!.cache.version).toBe(before);
  expect(await presentedSerial(p.listenerPort(LISTENER))).toBe(serial(certA));
});
