import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadBootstrapText } from '../../src/config/load';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { Proxy } from '../../src/proxy';
import { HCM_TYPE, ROUTER_TYPE, cluster, xdsSidecarBootstrap } from '../harness/bootstrap';
import { MIRROR_FILTER_NAME, MIRROR_PER_ROUTE_TYPE, MIRROR_TYPE, awayFromWindowEdge, until } from '../harness/mirror-ext';
import { fetchText } from '../harness/proxy';
import { type TestRedis, startRedis } from '../harness/redis';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Redis secrets delivered over xDS: the mirror filter's config sits in an Any (Mirror) inside the
// HCM's Any inside a Listener, and a MirrorPerRoute in a RouteConfiguration. The control plane
// shows them redacted on GET /snapshot and never reads a password_file (it is the sidecar's);
// the sidecar reads it, NACKs by path when it cannot, and redacts its dynamic /config_dump.

type Json = Record<string, unknown>;
const SECRET = 'Zq7-xds-SECRET-71d0a';
const ACL_SECRET = 'Yx3-xds-acl-SECRET-e5c2';
const LISTENER = 'ingress';

let dir: string;
let primary: Upstream;
let mirror: Upstream;
let redis: TestRedis;
let cp: ControlPlane | null;
let sidecar: Proxy | null;
let cpLog: string[];
let sidecarLog: string[];

function capture(lines: string[]): pino.Logger {
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb(); } });
  return pino({ level: 'debug' }, sink);
}

const server = (): Json => ({ server: { host: '127.0.0.1', port: redis.port } });

function listenerResource(redisMap: Json): Json {
  return {
    '@type': LISTENER_TYPE, name: LISTENER, address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': HCM_TYPE, stat_prefix: 'ingress_http',
      rds: { route_config_name: 'local_route', config_source: { ads: {}, resource_api_version: 'V3' } },
      http_filters: [
        { name: MIRROR_FILTER_NAME, typed_config: { '@type': MIRROR_TYPE, redis: redisMap } },
        { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } },
      ],
    } }] }],
  };
}

function routeResource(policies: Json[]): Json {
  return {
    '@type': ROUTE_TYPE, name: 'local_route',
    virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{
      match: { prefix: '/' }, route: { cluster: 'primary' },
      typed_per_filter_config: { [MIRROR_FILTER_NAME]: { '@type': MIRROR_PER_ROUTE_TYPE, policies } },
    }] }],
  };
}

function resourcesText(redisMap: Json, policies: Json[]): string {
  return JSON.stringify({
    version_info: 'v1',
    resources: [
      listenerResource(redisMap),
      routeResource(policies),
      { '@type': CLUSTER_TYPE, ...cluster('primary', [primary.port]) },
      { '@type': CLUSTER_TYPE, ...cluster('mirror', [mirror.port]) },
    ],
  });
}

function sidecarBootstrap(cpPort: number): string {
  return xdsSidecarBootstrap({ nodeId: 'secrets', cpPort, adminPort: 0 });
}

async function start(text: string): Promise<{ cp: ControlPlane; sidecar: Proxy }> {
  cp = await startControlPlane({ initialText: text, listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, logger: capture(cpLog) });
  sidecar = await Proxy.start({ loaded: loadBootstrapText(sidecarBootstrap(cp.port)), logger: capture(sidecarLog), initialFetchTimeoutMs: 5000, drainTimeoutMs: 200 });
  return { cp, sidecar };
}

function expectNoSecrets(text: string, what: string): void {
  for (const s of [SECRET, ACL_SECRET]) {
    if (text.includes(s)) throw new Error(`${what} shows the secret ${s}`);
  }
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-xds-secrets-'));
  primary = await startUpstream({ name: 'primary' });
  mirror = await startUpstream({ name: 'mirror' });
  redis = await startRedis({ requirepass: SECRET, users: [{ name: 'budget', password: ACL_SECRET }] });
  cp = null;
  sidecar = null;
  cpLog = [];
  sidecarLog = [];
});

afterEach(async () => {
  await sidecar?.stop();
  await cp?.close();
  await redis.stop();
  await primary.close();
  await mirror.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('passwords over xDS: budgets work; GET /snapshot, the dynamic /config_dump and both logs show none', async () => {
  const file = path.join(dir, 'acl-password');
  fs.writeFileSync(file, `${ACL_SECRET}\n`);
  const { cp: plane, sidecar: p } = await start(resourcesText(
    { main: { ...server(), password: SECRET, timeout: '2s' } },
    [
      { name: 'named', cluster: 'mirror', limit: { count: 1, time_window: '60s', policy: 'REDIS', redis: 'main' } },
      { name: 'acl', cluster: 'mirror', limit: { count: 1, time_window: '60s', policy: 'REDIS', redis_connection: { ...server(), username: 'budget', password_file: file, timeout: '2s' } } },
    ],
  ));
  await p.xds!.config.ready;
  await until('the listener is served', () => p.listeners.listeners().length === 1, 10_000);
  await awayFromWindowEdge(60_000);
  const url = `http://127.0.0.1:${p.listenerPort(LISTENER)}`;
  for (let i = 0; i < 3; i++) expect(await fetchText(`${url}/x/${i}`)).toMatchObject({ status: 200, body: 'primary' });
  // One mirror per budget: both Redis connections authenticated (default user, ACL user).
  await mirror.waitForRequests(2);
  await sleep(300);
  expect(mirror.requests).toHaveLength(2);

  const snapshot = (await fetchText(`http://127.0.0.1:${plane.adminPort}/snapshot`)).body;
  expectNoSecrets(snapshot, 'GET /snapshot');
  const resources = (JSON.parse(snapshot) as { resources: Json[] }).resources;
  const hcm = ((resources[0] as { filter_chains: Array<{ filters: Array<{ typed_config: Json }> }> }).filter_chains[0]!.filters[0]!.typed_config) as { http_filters: Array<{ typed_config: Json }> };
  expect(hcm.http_filters[0]!.typed_config).toMatchObject({ '@type': MIRROR_TYPE, redis: { main: { password: '[redacted]' } } });
  // The path of a password file is not a secret; the username is (as Envoy's redis_proxy auth_username).
  expect(JSON.stringify(resources[1])).toContain(JSON.stringify(file));
  expect(JSON.stringify(resources[1])).toContain('"username":"[redacted]"');

  const admin = p.adminAddress()!;
  for (const page of ['/config_dump', '/config_dump?include_eds', '/listeners', '/clusters', '/server_info', '/stats']) {
    expectNoSecrets((await fetchText(`http://127.0.0.1:${admin.port}${page}`)).body, page);
  }
  const dump = JSON.parse((await fetchText(`http://127.0.0.1:${admin.port}/config_dump`)).body) as { configs: Json[] };
  const listeners = dump.configs.find((c) => String(c['@type']).endsWith('ListenersConfigDump')) as { dynamic_listeners: Array<{ active_state: { listener: Json } }> };
  const dynHcm = (listeners.dynamic_listeners[0]!.active_state.listener as { filter_chains: Array<{ filters: Array<{ typed_config: { http_filters: Array<{ typed_config: Json }> } }> }> })
    .filter_chains[0]!.filters[0]!.typed_config;
  expect(dynHcm.http_filters[0]!.typed_config).toMatchObject({ redis: { main: { password: '[redacted]' } } });
  const routes = dump.configs.find((c) => String(c['@type']).endsWith('RoutesConfigDump')) as { dynamic_route_configs: Json[] };
  expect(JSON.stringify(routes.dynamic_route_configs)).toContain('"username":"[redacted]"');

  expectNoSecrets(cpLog.join('\n'), 'the control plane\'s logs');
  expectNoSecrets(sidecarLog.join('\n'), 'the sidecar\'s logs');
});

test('password_file the sidecar cannot read: the control plane accepts it unread; the sidecar NACKs by path', async () => {
  const missing = path.join(dir, 'no-such-password');
  const { cp: plane, sidecar: p } = await start(resourcesText({ main: { ...server(), password_file: missing } }, []));
  expect(plane.cache.version).not.toBe('');
  await until('the sidecar NACKs the listener', () => plane.status.lastNack('secrets', LISTENER_TYPE) !== null, 10_000);
  const nack = plane.status.lastNack('secrets', LISTENER_TYPE)!.error;
  expect(nack).toContain(`Listener "${LISTENER}"`);
  expect(nack).toContain('redis["main"].password_file');
  expect(nack).toContain(`cannot read "${missing}"`);
  expect(p.listeners.listeners()).toHaveLength(0);
});
