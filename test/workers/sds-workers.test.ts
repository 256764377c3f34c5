import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { CLUSTER_TYPE, LISTENER_TYPE, SECRET_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { HCM_TYPE, ROUTER_TYPE, cluster, xdsSidecarBootstrap } from '../harness/bootstrap';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { CLI, ensureCliBuilt } from '../harness/cli';
import { fetchText } from '../harness/proxy';
import { closedPort, sleep } from '../harness/upstream';

// `--concurrency 2` under SDS: the supervisor holds the one ADS stream and relays the secrets it
// accepted to its workers, so every worker's TLS listener presents the certificate the control
// plane serves, a rotation reaches both, and a replacement worker gets the secret replayed after
// the listener that names it.

jest.setTimeout(60_000);

type Json = Record<string, unknown>;

let certs: TestCertificates;
let certA: IssuedCertificate;
let certB: IssuedCertificate;
let dir: string;
let cp: ControlPlane | null = null;
let child: ChildProcess | null = null;

beforeAll(() => {
  ensureCliBuilt();
  certs = makeTestCertificates();
  certA = issueCertificate(certs, 'w-a', { san: 'DNS:localhost' });
  certB = issueCertificate(certs, 'w-b', { san: 'DNS:localhost' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-sds-workers-'));
});
afterAll(() => {
  certs.remove();
  fs.rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await stopSupervisor();
  await cp?.close();
  cp = null;
});

const serial = (c: IssuedCertificate): string => new X509Certificate(c.cert).serialNumber;

function resources(listenerPort: number, c: IssuedCertificate): string {
  return JSON.stringify({ version_info: 'v1', resources: [
    { '@type': SECRET_TYPE, name: 'server_cert', tls_certificate: { certificate_chain: { inline_string: c.cert }, private_key: { inline_string: fs.readFileSync(c.keyFile, 'utf8') } } },
    { '@type': LISTENER_TYPE, name: 'tls', address: { socket_address: { address: '127.0.0.1', port_value: listenerPort } },
      filter_chains: [{
        transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
          common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'server_cert', sds_config: { ads: {} } }] },
        } },
        filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
          '@type': HCM_TYPE, stat_prefix: 'tls',
          route_config: { name: 'r', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200 } }] }] },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
        } }],
      }] },
    { '@type': CLUSTER_TYPE, ...cluster('unused', [1]) },
  ] });
}

/** Serials presented by `n` fresh handshakes (node:cluster spreads new connections over the workers). */
async function presented(port: number, n: number): Promise<string[]> {
  const one = (): Promise<string> => new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca }, () => {
      resolve(s.getPeerCertificate().serialNumber ?? '');
      s.destroy();
    });
    s.once('error', (err: Error & { code?: string }) => resolve(`error ${err.code ?? err.message}`));
    s.setTimeout(3000, () => s.destroy(new Error('timeout')));
  });
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await one());
  return out;
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline && i < 1000; i++) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

async function workers(adminPort: number): Promise<number[]> {
  const info = JSON.parse((await fetchText(`http://127.0.0.1:${adminPort}/server_info`)).body) as { workers: Array<{ pid: number }> };
  return info.workers.map((w) => w.pid);
}

let workerPids: number[] = [];

async function stopSupervisor(): Promise<void> {
  if (!child) return;
  const c = child;
  child = null;
  if (c.exitCode === null && c.signalCode === null) {
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(t);
  }
  for (const pid of workerPids) {
    for (let i = 0; i < 30; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await sleep(100);
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  workerPids = [];
}

test('every worker presents the SDS certificate, takes a rotation, and replacement workers get it from the replay', async () => {
  const listenerPort = await closedPort();
  let adminPort = await closedPort();
  while (adminPort === listenerPort) adminPort = await closedPort();
  cp = await startControlPlane({ initialText: resources(listenerPort, certA), listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger() });
  const file = path.join(dir, 'sidecar.json');
  fs.writeFileSync(file, xdsSidecarBootstrap({ nodeId: 'workers', cpPort: cp.port, adminPort }));
  child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--concurrency', '2', '--log-level', 'error'], { stdio: 'ignore' });

  await until('both workers presenting A', async () => {
    workerPids = await workers(adminPort);
    return workerPids.length === 2 && (await presented(listenerPort, 6)).every((s) => s === serial(certA));
  });

  cp.setResourcesText(resources(listenerPort, certB));
  await until('both workers presenting B', async () => (await presented(listenerPort, 6)).every((s) => s === serial(certB)));

  // Both workers are replaced: only the replay can give the new ones the listener and its secret.
  const victims = [...workerPids];
  for (const pid of victims) process.kill(pid, 'SIGKILL');
  await until('two replacement workers', async () => {
    const pids = await workers(adminPort);
    if (pids.length === 2 && pids.every((p) => !victims.includes(p))) workerPids = pids;
    return workerPids.every((p) => !victims.includes(p));
  }, 30_000);
  // Well inside the 15 s a listener waits for a secret that is not coming.
  await until('the replacements presenting B', async () => (await presented(listenerPort, 6)).every((s) => s === serial(certB)), 8000);
});
