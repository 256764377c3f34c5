import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { Proxy } from '../../src/proxy';
import { HCM_TYPE, ROUTER_TYPE, cluster, xdsSidecarBootstrap } from '../harness/bootstrap';
import { fetchText } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// The whole xDS loop for real: our control plane watching a resources file, in-process sidecars
// that know only the control plane's address, and recording upstreams, all on 127.0.0.1.

type Json = Record<string, unknown>;

// ---- resources (the file the control plane watches) ----

const LISTENER = 'listener_0';

const rdsListener: Json = {
  '@type': LISTENER_TYPE, name: LISTENER, address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
    '@type': HCM_TYPE, stat_prefix: 'ingress_http', codec_type: 'AUTO',
    rds: { route_config_name: 'local_route', config_source: { ads: {}, resource_api_version: 'V3' } },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
  } }] }],
};

const routeConfig = (primary: string, mirrorPolicy: Json): Json => ({
  '@type': ROUTE_TYPE, name: 'local_route',
  virtual_hosts: [{ name: 'backend', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: primary, request_mirror_policies: [mirrorPolicy] } }] }],
});

const staticCluster = (name: string, port: number): Json => ({ '@type': CLUSTER_TYPE, ...cluster(name, [port]) });
const edsCluster = (name: string): Json => ({ '@type': CLUSTER_TYPE, name, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } } });
const assignment = (name: string, port: number): Json => {
  const { load_assignment } = cluster(name, [port]) as { load_assignment: Json };
  return { '@type': ENDPOINT_TYPE, ...load_assignment };
};

interface Ups { primary: Upstream; primaryB: Upstream; mirrorA: Upstream; mirrorB: Upstream }

/** The base set: RDS listener, route primary (EDS) → mirror-a, STATIC mirror-a, mirror-b and primary-b. */
function resources(u: Ups, o: { route?: Json; extraClusters?: Json[] } = {}): Json[] {
  return [
    rdsListener,
    o.route ?? routeConfig('primary', { cluster: 'mirror-a' }),
    edsCluster('primary'),
    assignment('primary', u.primary.port),
    staticCluster('mirror-a', u.mirrorA.port),
    staticCluster('primary-b', u.primaryB.port),
    ...(o.extraClusters ?? []),
  ];
}

const doc = (list: Json[], extra: Json = {}): string => JSON.stringify({ version_info: 'v1', resources: list, ...extra }, null, 2);

// ---- the sidecar ----

function sidecarBootstrap(nodeId: string, cpPort: number): string {
  return xdsSidecarBootstrap({ nodeId, cpPort, adminPort: 0 });
}

// ---- harness state, started and stopped by handle ----

let dir: string;
let file: string;
let ups: Ups;
let cp: ControlPlane | null;
let cpLog: string[];
let sidecars: Proxy[];

function capturingLogger(): pino.Logger {
  const lines: string[] = (cpLog = []);
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb(); } });
  return pino({ level: 'info' }, sink);
}

async function startCp(port = 0): Promise<ControlPlane> {
  cp = await startControlPlane({ resourcesFile: file, listen: { host: '127.0.0.1', port }, admin: { host: '127.0.0.1', port: 0 }, logger: capturingLogger() });
  return cp;
}

async function startSidecar(nodeId: string): Promise<Proxy> {
  const p = await Proxy.start({ loaded: loadBootstrapText(sidecarBootstrap(nodeId, cp!.port)), logger: silentLogger(), initialFetchTimeoutMs: 5000, drainTimeoutMs: 200 });
  sidecars.push(p);
  await p.xds!.config.ready;
  return p;
}

const url = (p: Proxy, pathname = '/'): string => `http://127.0.0.1:${p.listenerPort(LISTENER)}${pathname}`;

async function stat(p: Proxy, name: string): Promise<number | null> {
  const line = (await p.stats.text()).split('\n').find((l) => l.startsWith(`${name}: `));
  return line === undefined ? null : Number(line.slice(name.length + 2));
}

/** Polls `probe` every 50 ms until it returns true, for at most `timeoutMs`. */
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  for (let i = 0; Date.now() - started < timeoutMs && i < 10_000; i++) {
    if (await probe()) return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-e2e-'));
  file = path.join(dir, 'resources.yaml');
  sidecars = [];
  cp = null;
  ups = {
    primary: await startUpstream({ name: 'primary', delayMs: 2 }),
    primaryB: await startUpstream({ name: 'primary-b' }),
    mirrorA: await startUpstream({ name: 'mirror-a' }),
    mirrorB: await startUpstream({ name: 'mirror-b' }),
  };
  fs.writeFileSync(file, doc(resources(ups)));
  await startCp();
});

afterEach(async () => {
  for (const p of sidecars) await p.stop();
  await cp?.close();
  for (const u of Object.values(ups)) await u.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the sidecar gets listeners, routes and clusters (EDS and STATIC), serves and mirrors', async () => {
  const sidecar = await startSidecar('a');
  expect([...sidecar.xds!.config.listeners.keys()]).toEqual([LISTENER]);
  expect([...sidecar.xds!.config.routes.keys()]).toEqual(['local_route']);
  expect([...sidecar.xds!.config.clusters.keys()].sort()).toEqual(['mirror-a', 'primary', 'primary-b']);
  expect([...sidecar.xds!.config.endpoints.keys()]).toEqual(['primary']);
  const res = await fetchText(url(sidecar, '/hello'), { headers: { host: 'app.local' } });
  expect(res).toMatchObject({ status: 200, body: 'primary' });
  const [shadow] = await ups.mirrorA.waitForRequests(1);
  expect(shadow!.url).toBe('/hello');
  expect(shadow!.headers.host).toBe('app.local-shadow');
  expect(ups.mirrorB.requests).toHaveLength(0);
  // The control plane saw the sidecar ACK every type.
  const nodes = await (await fetch(`http://127.0.0.1:${cp!.adminPort}/nodes`)).json() as Record<string, { types: Record<string, { acked_version: string }> }>;
  for (const t of ['cds', 'eds', 'lds', 'rds']) expect(nodes.a!.types[t]!.acked_version).toBe('v1-1');
});

test('a file edit moves the mirror within 1 s under load, with no failed request', async () => {
  const sidecar = await startSidecar('a');
  const target = url(sidecar, '/load');
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let writtenAt = 0;
  const loop = async (deadline: number): Promise<void> => {
    for (let i = 0; i < 2000 && Date.now() < deadline; i++) {
      try {
        const r = await fetchText(target);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const deadline = Date.now() + 2000;
  const loops = Array.from({ length: 10 }, () => loop(deadline));
  await sleep(500);
  // The new mirror cluster arrives in the same edit as the route that uses it.
  writtenAt = Date.now();
  fs.writeFileSync(file, doc(resources(ups, { route: routeConfig('primary', { cluster: 'mirror-b' }), extraClusters: [staticCluster('mirror-b', ups.mirrorB.port)] })));
  await Promise.all(loops);

  expect(failures).toEqual([]);
  expect([...statuses.keys()]).toEqual([200]);
  expect(statuses.get(200)!).toBeGreaterThan(50);
  const [first] = await ups.mirrorB.waitForRequests(1, 1000, true);
  expect(first!.receivedAt - writtenAt).toBeLessThan(1000);
  expect(ups.mirrorA.requests.length).toBeGreaterThan(0);
  // Once the switch is done every shadow goes to mirror-b.
  const before = ups.mirrorA.requests.length;
  await fetchText(url(sidecar, '/after'));
  await until('shadow of /after at mirror-b', () => ups.mirrorB.requests.some((r) => r.url === '/after'));
  expect(ups.mirrorA.requests.length).toBe(before);
});

test('an invalid edit is refused by the control plane and the sidecar keeps the old config', async () => {
  const sidecar = await startSidecar('a');
  const rdsVersion = sidecar.xds!.config.version(ROUTE_TYPE);
  fs.writeFileSync(file, doc(resources(ups, { route: routeConfig('primary', { cluster: 'primary-b', cluster_header: 'x-mirror' }) })));
  type Snap = { version: string; last_rejection?: { issues: Array<{ path: string; message: string }> } };
  let snap: Snap | null = null;
  await until('rejection on /snapshot', async () => {
    snap = await (await fetch(`http://127.0.0.1:${cp!.adminPort}/snapshot`)).json() as Snap;
    return snap.last_rejection !== undefined;
  }, 3000);
  expect(snap!.version).toBe('v1-1');
  expect(snap!.last_rejection!.issues).toEqual([expect.objectContaining({
    path: 'resources[1].virtual_hosts[0].routes[0].route.request_mirror_policies[0]',
    message: expect.stringContaining('only one of cluster or cluster_header'),
  })]);
  expect(cpLog.some((l) => l.includes('rejected') && l.includes('request_mirror_policies[0]'))).toBe(true);

  const res = await fetchText(url(sidecar, '/still'));
  expect(res).toMatchObject({ status: 200, body: 'primary' });
  await until('shadow of /still at mirror-a', () => ups.mirrorA.requests.some((r) => r.url === '/still'));
  expect(ups.primaryB.requests).toHaveLength(0);
  expect(sidecar.xds!.config.version(ROUTE_TYPE)).toBe(rdsVersion);
});

test('without its control plane the sidecar keeps serving, then reconnects and resyncs', async () => {
  const sidecar = await startSidecar('a');
  const port = cp!.port;
  const listenerPort = sidecar.listenerPort(LISTENER);
  expect(await stat(sidecar, 'control_plane.connected_state')).toBe(1);

  await cp!.close();
  cp = null;
  await until('connected_state 0', async () => (await stat(sidecar, 'control_plane.connected_state')) === 0, 3000);
  // Stay down long enough for several reconnect attempts to fail; traffic carries on meanwhile.
  const downUntil = Date.now() + 1500;
  let offline = 0;
  for (; offline < 100 && Date.now() < downUntil; offline++) {
    expect(await fetchText(url(sidecar, `/offline-${offline}`))).toMatchObject({ status: 200, body: 'primary' });
    await sleep(50);
  }
  await until('shadows while offline', () => ups.mirrorA.requests.filter((r) => r.url.startsWith('/offline-')).length === offline);
  expect(await stat(sidecar, 'control_plane.connected_state')).toBe(0);
  // The admin page says the same as the registry.
  const admin = sidecar.adminAddress()!;
  expect((await fetchText(`http://127.0.0.1:${admin.port}/stats`)).body).toContain('control_plane.connected_state: 0');

  // A new control plane on the same port, same version_info, different routes: the route now
  // answers from primary-b and mirrors to mirror-b.
  fs.writeFileSync(file, doc(resources(ups, { route: routeConfig('primary-b', { cluster: 'mirror-b' }), extraClusters: [staticCluster('mirror-b', ups.mirrorB.port)] })));
  await startCp(port);
  const took = await until('resync to primary-b', async () => (await fetchText(url(sidecar, '/resync'))).body === 'primary-b', 12_000);
  expect(took).toBeLessThan(12_000);
  await until('shadow of /resync at mirror-b', () => ups.mirrorB.requests.some((r) => r.url === '/resync'));
  expect(await stat(sidecar, 'control_plane.connected_state')).toBe(1);
  // The listener was kept, not rebound.
  expect(sidecar.listenerPort(LISTENER)).toBe(listenerPort);
});

test('a node override sends node b\'s shadows elsewhere while node a keeps the base', async () => {
  const override = { node: { id: 'b' }, resources: [routeConfig('primary', { cluster: 'mirror-b' })] };
  fs.writeFileSync(file, doc(resources(ups, { extraClusters: [staticCluster('mirror-b', ups.mirrorB.port)] }), { node_overrides: [override] }));
  await until('override accepted', () => cp!.cache.resources.overrides.length === 1, 3000);
  const a = await startSidecar('a');
  const b = await startSidecar('b');
  expect(a.listenerPort(LISTENER)).not.toBe(b.listenerPort(LISTENER));

  expect(await fetchText(url(a, '/from-a'))).toMatchObject({ status: 200, body: 'primary' });
  expect(await fetchText(url(b, '/from-b'))).toMatchObject({ status: 200, body: 'primary' });
  await until('shadow of /from-a at mirror-a', () => ups.mirrorA.requests.some((r) => r.url === '/from-a'));
  await until('shadow of /from-b at mirror-b', () => ups.mirrorB.requests.some((r) => r.url === '/from-b'));
  await sleep(100);
  expect(ups.mirrorA.requests.map((r) => r.url)).toEqual(['/from-a']);
  expect(ups.mirrorB.requests.map((r) => r.url)).toEqual(['/from-b']);
});

test('/config_dump shows the dynamic clusters, listeners and routes with version and time', async () => {
  const sidecar = await startSidecar('a');
  const admin = sidecar.adminAddress()!;
  const dump = JSON.parse((await fetchText(`http://127.0.0.1:${admin.port}/config_dump`)).body) as { configs: Json[] };
  const byType = (t: string): Json => dump.configs.find((c) => String(c['@type']).endsWith(t))!;
  const isDate = (v: unknown): boolean => typeof v === 'string' && !Number.isNaN(Date.parse(v));

  const clusters = byType('ClustersConfigDump');
  expect(clusters.version_info).toBe('v1-1');
  expect((clusters.static_clusters as Json[]).map((c) => (c.cluster as Json).name)).toEqual(['xds_cluster']);
  const active = clusters.dynamic_active_clusters as Array<{ version_info: string; last_updated: string; cluster: Json }>;
  expect(active.map((c) => c.cluster.name).sort()).toEqual(['mirror-a', 'primary', 'primary-b']);
  for (const c of active) {
    expect(c.version_info).toBe('v1-1');
    expect(isDate(c.last_updated)).toBe(true);
    expect(c.cluster['@type']).toBe(CLUSTER_TYPE);
  }

  const listeners = byType('ListenersConfigDump').dynamic_listeners as Array<{ name: string; active_state: { version_info: string; last_updated: string; listener: Json } }>;
  expect(listeners).toHaveLength(1);
  expect(listeners[0]!.name).toBe(LISTENER);
  expect(listeners[0]!.active_state.version_info).toBe('v1-1');
  expect(isDate(listeners[0]!.active_state.last_updated)).toBe(true);
  expect(listeners[0]!.active_state.listener['@type']).toBe(LISTENER_TYPE);

  const routes = byType('RoutesConfigDump').dynamic_route_configs as Array<{ version_info: string; last_updated: string; route_config: Json }>;
  expect(routes).toHaveLength(1);
  expect(routes[0]!.version_info).toBe('v1-1');
  expect(isDate(routes[0]!.last_updated)).toBe(true);
  expect(routes[0]!.route_config.name).toBe('local_route');

  // A route change moves the route's version and time, not the listener's.
  await sleep(20);
  fs.writeFileSync(file, doc(resources(ups, { route: routeConfig('primary', { cluster: 'primary-b' }) })));
  await until('RDS v1-2 applied', () => sidecar.xds!.config.version(ROUTE_TYPE) === 'v1-2', 3000);
  const next = JSON.parse((await fetchText(`http://127.0.0.1:${admin.port}/config_dump`)).body) as { configs: Json[] };
  const nextRoute = (next.configs.find((c) => String(c['@type']).endsWith('RoutesConfigDump'))!.dynamic_route_configs as Array<{ version_info: string; last_updated: string }>)[0]!;
  expect(nextRoute.version_info).toBe('v1-2');
  expect(Date.parse(nextRoute.last_updated)).toBeGreaterThan(Date.parse(routes[0]!.last_updated));
  const nextListener = (next.configs.find((c) => String(c['@type']).endsWith('ListenersConfigDump'))!.dynamic_listeners as typeof listeners)[0]!;
  expect(nextListener.active_state.version_info).toBe('v1-1');
  expect(nextListener.active_state.last_updated).toBe(listeners[0]!.active_state.last_updated);
});
