import { X509Certificate } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { LISTENER_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { HCM_TYPE, ROUTER_TYPE, xdsSidecarBootstrap } from '../harness/bootstrap';
import { type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { CLI, ensureCliBuilt, killCli } from '../harness/cli';
import { fetchText } from '../harness/proxy';
import { freePort } from '../harness/redis';
import { sleep } from '../harness/upstream';

// xDS over TLS and mTLS, for real: our control plane serving ADS on a TLS port (requiring client
// certificates with a client CA), and in-process sidecars whose xDS cluster carries an
// UpstreamTlsContext, read with Envoy's rules (no trusted_ca: no verification; SANs only through
// match_typed_subject_alt_names; SNI from `sni`).

type Json = Record<string, unknown>;

const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

let certs: TestCertificates;
let dir: string;
let cp: ControlPlane | null;
let cpLog: string[];
let sidecars: Proxy[];

beforeAll(() => {
  certs = makeTestCertificates();
});
afterAll(() => certs.remove());
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-xds-tls-'));
  cp = null;
  sidecars = [];
});
afterEach(async () => {
  for (const p of sidecars) await p.stop();
  await cp?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One listener answering 200 "configured" on its own: a sidecar that got config serves it. */
const RESOURCES = JSON.stringify({ version_info: 'v1', resources: [{
  '@type': LISTENER_TYPE, name: 'direct', address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
    '@type': HCM_TYPE, stat_prefix: 'direct',
    route_config: { name: 'r', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'configured' } } }] }] },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
  } }] }],
}] });

function capturingLogger(): pino.Logger {
  const lines: string[] = (cpLog = []);
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb(); } });
  return pino({ level: 'info' }, sink);
}

async function startCp(clientCa: boolean, files = { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile }): Promise<ControlPlane> {
  cp = await startControlPlane({
    initialText: RESOURCES, listen: { host: '127.0.0.1', port: 0 }, logger: capturingLogger(),
    xdsTls: { ...files, ...(clientCa ? { clientCaFile: certs.caFile } : {}) },
  });
  return cp;
}

/** The sidecar bootstrap with `tls` as the xDS cluster's UpstreamTlsContext (none: plaintext). */
function bootstrapWith(cpPort: number, tlsContext: Json | null, extra: Json = {}): string {
  const b = JSON.parse(xdsSidecarBootstrap({ nodeId: 'mtls', cpPort })) as { static_resources: { clusters: Json[] } };
  if (tlsContext) b.static_resources.clusters[0]!.transport_socket = { name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM_TLS, ...tlsContext } };
  return JSON.stringify({ ...b, static_resources: { ...b.static_resources, ...extra } });
}

const clientCert = { certificate_chain: { filename: '' }, private_key: { filename: '' } };
function withClientCert(): Json {
  return { ...clientCert, certificate_chain: { filename: certs.clientCertFile }, private_key: { filename: certs.clientKeyFile } };
}

async function startSidecar(text: string): Promise<Proxy> {
  const p = await Proxy.start({ loaded: loadBootstrapText(text), logger: silentLogger(), initialFetchTimeoutMs: 200, drainTimeoutMs: 200 });
  sidecars.push(p);
  return p;
}

/** Resolves true when the first config arrives within `ms`, false otherwise. */
async function configured(p: Proxy, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.xds!.config.ready.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

async function connectedState(p: Proxy): Promise<number | null> {
  const line = (await p.stats.text()).split('\n').find((l) => l.startsWith('control_plane.connected_state: '));
  return line === undefined ? null : Number(line.split(': ')[1]);
}

async function refused(reason: string): Promise<number> {
  const m = (await cp!.metrics.tlsConnectionsRefused.get()).values.find((v) => v.labels.reason === reason);
  return m?.value ?? 0;
}

test('mTLS: a sidecar with the right client certificate gets its config and serves', async () => {
  await startCp(true);
  const p = await startSidecar(bootstrapWith(cp!.port, {
    sni: 'localhost',
    common_tls_context: {
      // The client certificate comes from static_resources.secrets, the CA inline.
      tls_certificate_sds_secret_configs: [{ name: 'xds_client' }],
      validation_context: {
        trusted_ca: { inline_string: certs.ca },
        match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'localhost' } }],
      },
    },
  }, { secrets: [{ name: 'xds_client', tls_certificate: withClientCert() }] }));
  expect(await configured(p, 5000)).toBe(true);
  expect(await fetchText(`http://127.0.0.1:${p.listenerPort('direct')}/`)).toMatchObject({ status: 200, body: 'configured' });
  expect(await connectedState(p)).toBe(1);
  expect(cp!.status.toJSON().mtls).toMatchObject({ streams: 1 });
  expect(cpLog.some((l) => l.includes('"transport":"mtls"'))).toBe(true);
});

test('mTLS: a sidecar without a client certificate gets nothing, and the refusal is counted and logged', async () => {
  await startCp(true);
  const p = await startSidecar(bootstrapWith(cp!.port, { common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile } } } }));
  expect(await configured(p, 1500)).toBe(false);
  expect(p.listeners.names()).toEqual([]);
  expect(await connectedState(p)).toBe(0);
  expect(await refused('no_client_certificate')).toBeGreaterThan(0);
  expect(cp!.status.toJSON()).toEqual({});
  const line = cpLog.find((l) => l.includes('xDS connection refused by TLS'));
  expect(line).toContain('"reason":"no_client_certificate"');
});

test('mTLS: a client certificate from another CA is refused', async () => {
  await startCp(true);
  const stranger = issueCertificate(certs, 'stranger', { issuer: 'other-ca' });
  const p = await startSidecar(bootstrapWith(cp!.port, {
    common_tls_context: {
      tls_certificates: [{ certificate_chain: { filename: stranger.certFile }, private_key: { filename: stranger.keyFile } }],
      validation_context: { trusted_ca: { filename: certs.caFile } },
    },
  }));
  expect(await configured(p, 1500)).toBe(false);
  expect(await refused('bad_client_certificate')).toBeGreaterThan(0);
});

test('a plaintext xDS cluster against a TLS control plane never connects', async () => {
  await startCp(true);
  const p = await startSidecar(bootstrapWith(cp!.port, null));
  expect(await configured(p, 1500)).toBe(false);
  expect(p.listeners.names()).toEqual([]);
  expect(await connectedState(p)).toBe(0);
  expect(await refused('handshake')).toBeGreaterThan(0);
});

test("Envoy's verification rules: no trusted_ca accepts any server; a wrong CA or an unmatched SAN fails", async () => {
  // The server certificate is signed by a CA Node does not trust: only "no verification" connects.
  await startCp(false);
  const open = await startSidecar(bootstrapWith(cp!.port, { common_tls_context: {} }));
  expect(await configured(open, 5000)).toBe(true);

  const wrongCa = await startSidecar(bootstrapWith(cp!.port, { common_tls_context: { validation_context: { trusted_ca: { filename: certs.otherCaFile } } } }));
  const wrongSan = await startSidecar(bootstrapWith(cp!.port, { common_tls_context: { validation_context: {
    trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'not-the-control-plane' } }],
  } } }));
  // The host (127.0.0.1) is never compared with the certificate: a SAN matcher alone decides.
  const sanOnly = await startSidecar(bootstrapWith(cp!.port, { common_tls_context: { validation_context: {
    trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'localhost' } }],
  } } }));
  expect(await configured(sanOnly, 5000)).toBe(true);
  expect(await configured(wrongCa, 1000)).toBe(false);
  expect(await configured(wrongSan, 500)).toBe(false);
});

test('the xDS cluster cannot take its certificate from the ADS stream it secures', async () => {
  await startCp(false);
  const text = bootstrapWith(cp!.port, { common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'c', sds_config: { ads: {} } }] } });
  await expect(Proxy.start({ loaded: loadBootstrapText(text), logger: silentLogger(), initialFetchTimeoutMs: 200 })).rejects.toThrow(ConfigError);
  await expect(Proxy.start({ loaded: loadBootstrapText(text), logger: silentLogger(), initialFetchTimeoutMs: 200 })).rejects.toThrow(
    /static_resources\.clusters\[0\]\.transport_socket\.typed_config\.common_tls_context\.tls_certificate_sds_secret_configs\[0\]\.name: the ADS cluster cannot take a secret from the ADS stream it secures/);
});

test('new certificate files on the control plane apply to the next handshakes without a restart', async () => {
  const crt = path.join(dir, 'cp.crt');
  const key = path.join(dir, 'cp.key');
  fs.copyFileSync(certs.serverCertFile, crt);
  fs.copyFileSync(certs.serverKeyFile, key);
  await startCp(false, { certFile: crt, keyFile: key });
  const presented = (): Promise<string> => new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: cp!.port, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().serialNumber ?? '');
      s.destroy();
    });
    s.once('error', reject);
  });
  expect(await presented()).toBe(new X509Certificate(fs.readFileSync(certs.serverCertFile)).serialNumber);
  const next = issueCertificate(certs, 'cp-next', { san: 'DNS:localhost' });
  fs.copyFileSync(next.keyFile, `${key}.tmp`);
  fs.copyFileSync(next.certFile, `${crt}.tmp`);
  fs.renameSync(`${key}.tmp`, key);
  fs.renameSync(`${crt}.tmp`, crt);
  const want = new X509Certificate(next.cert).serialNumber;
  let got = '';
  for (let i = 0; i < 60 && got !== want; i++) {
    await sleep(50);
    got = await presented();
  }
  expect(got).toBe(want);
});

/** A TLS handshake with the control plane: 'ok' once the server accepted it, else the error code. */
function handshake(port: number, withClientCert: boolean): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca, ALPNProtocols: ['h2'], maxVersion: 'TLSv1.2',
      ...(withClientCert ? { cert: fs.readFileSync(certs.clientCertFile), key: fs.readFileSync(certs.clientKeyFile) } : {}),
    }, () => {
      // A refused client certificate shows as a close right after the handshake (TLS 1.2: an alert in it).
      s.once('data', () => undefined);
      setTimeout(() => { resolve(s.destroyed ? 'closed' : 'ok'); s.destroy(); }, 200);
    });
    s.once('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
  });
}

test('sidemirror control-plane --tls-cert --tls-key --client-ca serves mTLS; its admin API stays plain HTTP', async () => {
  ensureCliBuilt();
  const grpcPort = await freePort();
  let adminPort = await freePort();
  while (adminPort === grpcPort) adminPort = await freePort();
  const file = path.join(dir, 'resources.json');
  fs.writeFileSync(file, RESOURCES);
  let child: ChildProcess | null = spawn(process.execPath, [CLI, 'control-plane', '-c', file, '--listen', `127.0.0.1:${grpcPort}`, '--admin', `127.0.0.1:${adminPort}`,
    '--tls-cert', certs.serverCertFile, '--tls-key', certs.serverKeyFile, '--client-ca', certs.caFile, '--log-level', 'error'], { stdio: 'ignore' });
  try {
    let ready = 0;
    for (let i = 0; i < 200 && ready !== 200; i++) {
      await sleep(100);
      ready = (await fetchText(`http://127.0.0.1:${adminPort}/ready`).catch(() => ({ status: 0 }))).status;
    }
    expect(ready).toBe(200);
    expect(await handshake(grpcPort, true)).toBe('ok');
    expect(await handshake(grpcPort, false)).not.toBe('ok');
    const metrics = (await fetchText(`http://127.0.0.1:${adminPort}/metrics`)).body;
    expect(metrics).toMatch(/sidemirror_cp_xds_tls_connections_refused_total\{reason="no_client_certificate"\} 1/);
  } finally {
    await killCli(child);
    child = null;
  }
});
