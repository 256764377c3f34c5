import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { HCM_TYPE, ROUTER_TYPE, cluster, xdsSidecarBootstrap } from '../harness/bootstrap';
import { CLI, ensureCliBuilt, killCli } from '../harness/cli';
import { until } from '../harness/mirror-ext';
import { fetchText } from '../harness/proxy';
import { freePort } from '../harness/redis';
import { type Upstream, startUpstream } from '../harness/upstream';

// A sidecar started while its control plane is down opens its admin port at once, as Envoy does:
// /ready answers 503 (INITIALIZING) until the first configuration is in, or until the
// bootstrap's initial_fetch_timeout passes. Real sidecar processes and a real control plane.

let dir: string;
let upstream: Upstream;
let child: ChildProcess | null = null;
let cp: ControlPlane | null = null;

beforeAll(async () => {
  ensureCliBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-startup-'));
  upstream = await startUpstream({ name: 'primary' });
});
afterAll(async () => {
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await killCli(child);
  child = null;
  await cp?.close();
  cp = null;
});

function sidecar(cpPort: number, adminPort: number, initialFetchTimeout: string): void {
  const file = path.join(dir, `sidecar-${adminPort}.json`);
  fs.writeFileSync(file, xdsSidecarBootstrap({ nodeId: 'startup', cpPort, adminPort, source: { initial_fetch_timeout: initialFetchTimeout } }));
  child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--log-level', 'error'], { stdio: 'ignore' });
}

function resources(listenerPort: number): string {
  return JSON.stringify({ resources: [
    { '@type': LISTENER_TYPE, name: 'ingress', address: { socket_address: { address: '127.0.0.1', port_value: listenerPort } },
      filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
        '@type': HCM_TYPE, stat_prefix: 'ingress_http',
        rds: { route_config_name: 'local_route', config_source: { ads: {}, resource_api_version: 'V3' } },
        http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
      } }] }] },
    { '@type': ROUTE_TYPE, name: 'local_route', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'primary' } }] }] },
    { '@type': CLUSTER_TYPE, ...cluster('primary', [upstream.port]) },
  ] });
}

const ready = async (adminPort: number): Promise<{ status: number; body: string }> =>
  fetchText(`http://127.0.0.1:${adminPort}/ready`).catch(() => ({ status: 0, body: '' }));

test('the control plane down: /ready is 503 INITIALIZING at once, and LIVE once the config arrives (initial_fetch_timeout: 0)', async () => {
  const [cpPort, adminPort, listenerPort] = [await freePort(), await freePort(), await freePort()];
  // 1. No control plane yet: the admin port opens and says INITIALIZING.
  sidecar(cpPort, adminPort, '0s');
  await until('admin answers', async () => (await ready(adminPort)).status !== 0, 15_000);
  expect(await ready(adminPort)).toMatchObject({ status: 503, body: 'INITIALIZING\n' });
  // 2. Still waiting later: a timeout of 0 waits for the config however long it takes.
  await new Promise((r) => setTimeout(r, 1500));
  expect((await ready(adminPort)).status).toBe(503);
  // 3. The control plane comes up: LIVE, and the listener it sent serves.
  cp = await startControlPlane({ initialText: resources(listenerPort), listen: { host: '127.0.0.1', port: cpPort }, logger: silentLogger() });
  await until('LIVE', async () => (await ready(adminPort)).status === 200, 20_000);
  expect((await ready(adminPort)).body).toBe('LIVE\n');
  expect((await fetchText(`http://127.0.0.1:${listenerPort}/x`)).body).toBe('primary');
}, 60_000);

test('initial_fetch_timeout 1s: with no control plane the sidecar goes LIVE after it', async () => {
  const [cpPort, adminPort] = [await freePort(), await freePort()];
  const started = Date.now();
  sidecar(cpPort, adminPort, '1s');
  await until('admin answers', async () => (await ready(adminPort)).status !== 0, 15_000);
  await until('LIVE', async () => (await ready(adminPort)).status === 200, 15_000);
  expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
}, 40_000);
