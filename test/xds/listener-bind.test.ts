import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, LISTENER_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { cluster, listener, route, routeConfig, xdsSidecarBootstrap } from '../harness/bootstrap';
import { fetchText } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Envoy binds a listener's socket when LDS adds it and rejects an update that cannot bind: our
// real control plane pushes a listener onto a port another socket holds; the sidecar NACKs it,
// counts listener_manager.listener_create_failure, and the old listener keeps serving.

type Json = Record<string, unknown>;

const lds = (port: number, statPrefix = 'ingress_http'): Json => ({
  '@type': LISTENER_TYPE, ...listener(routeConfig([route('/', 'primary')]), { name: 'listener_0', port, hcm: { stat_prefix: statPrefix } }),
});
const doc = (version: string, list: Json[]): string => JSON.stringify({ version_info: version, resources: list });

function sidecarBootstrap(cpPort: number): string {
  return xdsSidecarBootstrap({ nodeId: 'bind', cpPort });
}

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const started = Date.now();
  for (let i = 0; Date.now() - started < timeoutMs && i < 1000; i++) {
    if (await probe()) return;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

async function stat(p: Proxy, name: string): Promise<number | null> {
  const line = (await p.stats.text()).split('\n').find((l) => l.startsWith(`${name}: `));
  return line === undefined ? null : Number(line.slice(name.length + 2));
}

let dir: string;
let file: string;
let upstream: Upstream;
let cp: ControlPlane;
let sidecar: Proxy;
let holder: net.Server;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-bind-'));
  file = path.join(dir, 'resources.yaml');
  upstream = await startUpstream({ name: 'primary' });
  holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
  fs.writeFileSync(file, doc('v1', [lds(0), { '@type': CLUSTER_TYPE, ...cluster('primary', [upstream.port]) }]));
  cp = await startControlPlane({ resourcesFile: file, listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger(), watchDebounceMs: 20 });
  sidecar = await Proxy.start({ loaded: loadBootstrapText(sidecarBootstrap(cp.port)), logger: silentLogger(), initialFetchTimeoutMs: 5000, drainTimeoutMs: 200 });
  await sidecar.xds!.config.ready;
});

afterEach(async () => {
  await sidecar.stop();
  await cp.close();
  await upstream.close();
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an LDS update to a port held by another socket is NACKed with the reason; the old listener keeps serving', async () => {
  const oldPort = sidecar.listenerPort('listener_0');
  expect(await fetchText(`http://127.0.0.1:${oldPort}/before`)).toMatchObject({ status: 200, body: 'primary' });
  expect(await stat(sidecar, 'listener_manager.listener_create_failure')).toBe(0);

  const taken = (holder.address() as net.AddressInfo).port;
  fs.writeFileSync(file, doc('v2', [lds(taken), { '@type': CLUSTER_TYPE, ...cluster('primary', [upstream.port]) }]));
  await until('the LDS NACK', () => cp.status.lastNack('bind', LISTENER_TYPE) !== null);

  const nack = cp.status.lastNack('bind', LISTENER_TYPE)!;
  expect(nack.error).toBe(`Listener "listener_0": cannot bind 127.0.0.1:${taken}: EADDRINUSE`);
  expect(await stat(sidecar, 'listener_manager.listener_create_failure')).toBe(1);
  expect(await stat(sidecar, 'listener_manager.lds.update_rejected')).toBe(1);
  // The old listener is still the one in force, and still serves.
  expect(sidecar.listenerPort('listener_0')).toBe(oldPort);
  expect(sidecar.xds!.config.listeners.get('listener_0')!.value.address.port).toBe(0);
  expect(await fetchText(`http://127.0.0.1:${oldPort}/after`)).toMatchObject({ status: 200, body: 'primary' });
  expect(upstream.requests.map((r) => r.url)).toEqual(['/before', '/after']);

  // Once the port is free, the next update of the listener is accepted and it moves there.
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
  fs.writeFileSync(file, doc('v3', [lds(taken, 'ingress_v3'), { '@type': CLUSTER_TYPE, ...cluster('primary', [upstream.port]) }]));
  await until('the listener moves', () => sidecar.listeners.address('listener_0')?.port === taken);
  expect(await fetchText(`http://127.0.0.1:${taken}/moved`)).toMatchObject({ status: 200, body: 'primary' });
});
