import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { HookDirs } from '../../src/shadow/hook-dirs';
import { HCM_TYPE, cluster, routeConfig, xdsSidecarBootstrap } from '../harness/bootstrap';
import { CLI, ensureCliBuilt, killCli, runCli } from '../harness/cli';
import { type Json, extBootstrap, extRoute, mirrorHttpFilters, until } from '../harness/mirror-ext';
import { fetchText, startProxy } from '../harness/proxy';
import { freeLowPort } from '../harness/redis';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Config can load code only from the directories the operator allowed (--hooks-dir). A module
// outside them, or one that breaks or ends the process while loading, is a config error with its
// field path: a static config is refused, an xDS update NACKed, and the sidecar lives on. Real
// sidecar processes, a real control plane and real upstreams on 127.0.0.1.

const ROOT = path.resolve(__dirname, '..', '..');
const TSC_DIR = path.join(ROOT, 'node_modules', 'typescript', 'lib');

let dir: string;
let allowed: string;
let planted: string;
let marker: string;
let primary: Upstream;
let mirror: Upstream;

beforeAll(() => {
  ensureCliBuilt();
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'sm-hook-trust-')));
  allowed = path.join(dir, 'hooks');
  fs.mkdirSync(allowed);
  marker = path.join(dir, 'planted-ran');
  // A module planted outside the allowed directory: if it ever runs, the marker file appears.
  planted = path.join(dir, 'planted.js');
  fs.writeFileSync(planted, `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran');\nexports.beforeMirror = () => true;\n`);
  fs.writeFileSync(path.join(allowed, 'good.js'), "exports.mirrorRewrite = (ctx, req) => { req.headers['x-hooked'] = '1'; };\n");
  fs.writeFileSync(path.join(allowed, 'throws.js'), "throw new Error('no config for this hook');\n");
  fs.writeFileSync(path.join(allowed, 'exits.js'), 'process.exit(7);\n');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

beforeEach(async () => {
  primary = await startUpstream({ name: 'primary' });
  mirror = await startUpstream({ name: 'mirror' });
});
afterEach(async () => {
  await primary.close();
  await mirror.close();
});

const clusters = (): Json[] => [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])];
const hookedRoute = (module: string): Json => extRoute('/', 'primary', [{ name: 'hk', cluster: 'mirror', hooks: { module } }]);
const MODULE_PATH = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0]'
  + '.typed_per_filter_config["sidemirror.filters.http.mirror"].policies[0].hooks.module';

function writeConfig(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('static config', () => {
  test('without --hooks-dir any hook is refused by field path, and the planted module never runs', async () => {
    const file = writeConfig('planted.json', extBootstrap({ routes: [hookedRoute(planted)], clusters: clusters() }));
    for (const command of ['validate', 'proxy']) {
      const r = await runCli([command, '-c', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${MODULE_PATH}: hook modules are not allowed: start sidemirror with --hooks-dir DIR`);
    }
    expect(fs.existsSync(marker)).toBe(false);
  });

  test('a module outside every --hooks-dir is refused, also through ..', async () => {
    for (const module of [planted, '../planted.js']) {
      const file = writeConfig('outside.json', extBootstrap({ routes: [hookedRoute(module)], clusters: clusters() }));
      const r = await runCli(['validate', '-c', file, '--hooks-dir', allowed]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${MODULE_PATH}: hook module ${JSON.stringify(module)} (${planted}) is outside the allowed --hooks-dir ${allowed}`);
    }
    expect(fs.existsSync(marker)).toBe(false);
  });

  test('a module that throws or exits while loading is a config error; validate says so', async () => {
    const file = writeConfig('broken.json', extBootstrap({ routes: [hookedRoute('throws.js')], clusters: clusters() }));
    const r = await runCli(['validate', '-c', file, '--hooks-dir', allowed]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${MODULE_PATH}: failed to load hook module ${path.join(allowed, 'throws.js')}: no config for this hook`);
    const exits = writeConfig('exits.json', extBootstrap({ routes: [hookedRoute('exits.js')], clusters: clusters() }));
    const e = await runCli(['validate', '-c', exits, '--hooks-dir', allowed]);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain(`hook module ${path.join(allowed, 'exits.js')} called process.exit() while loading`);
  });

  test('a module in the allowed directory, named relative to it, runs', async () => {
    const file = writeConfig('good.json', extBootstrap({ routes: [hookedRoute('good')], clusters: clusters() }));
    expect((await runCli(['validate', '-c', file, '--hooks-dir', allowed])).stdout).toContain('OK');
    const p = await startProxy(fs.readFileSync(file, 'utf8'), { hookDirs: new HookDirs([allowed]) });
    try {
      expect((await fetchText(`${p.url}/x`)).body).toBe('primary');
      const [shadow] = await mirror.waitForRequests(1);
      expect(shadow!.headers['x-hooked']).toBe('1');
    } finally {
      await p.stop();
    }
  });

  test('a module whose own async code fails after loading does not end the sidecar process', async () => {
    fs.writeFileSync(path.join(allowed, 'late.js'), "Promise.reject(new Error('late boom'));\nexports.beforeMirror = () => true;\n");
    const port = await freeLowPort();
    const file = writeConfig('late.json', extBootstrap({ routes: [hookedRoute('late.js')], clusters: clusters(), port }));
    const child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--hooks-dir', allowed, '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await until('the sidecar serves', async () => (await fetchText(`http://127.0.0.1:${port}/a`).catch(() => ({ body: '' }))).body === 'primary', 15_000);
      await sleep(300);
      expect((await fetchText(`http://127.0.0.1:${port}/b`)).body).toBe('primary');
      expect(child.exitCode).toBeNull();
      expect(stderr).toContain('unhandled promise rejection; serving on');
    } finally {
      await killCli(child);
    }
  });

  test('a reload naming a refused module keeps the running config', async () => {
    const p = await startProxy(extBootstrap({ routes: [hookedRoute('good.js')], clusters: clusters() }), { hookDirs: new HookDirs([allowed]) });
    try {
      const bad = writeConfig('reload-bad.json', extBootstrap({ routes: [hookedRoute(planted)], clusters: clusters() }));
      await expect(p.proxy.reloadFile(bad)).rejects.toThrow(/is outside the allowed --hooks-dir/);
      expect((await fetchText(`${p.url}/after`)).body).toBe('primary');
      const [shadow] = await mirror.waitForRequests(1);
      expect(shadow!.headers['x-hooked']).toBe('1');
      expect(fs.existsSync(marker)).toBe(false);
    } finally {
      await p.stop();
    }
  });
});

describe('over xDS', () => {
  let cp: ControlPlane;
  let child: ChildProcess | null = null;

  afterEach(async () => {
    await killCli(child);
    child = null;
    await cp?.close();
  });

  /** The control plane's versions are `<version_info>-<n>`. */
  const nackedVersion = (): string => cp.status.lastNack('hook-trust', ROUTE_TYPE)?.version ?? '';

  function resources(version: string, listenerPort: number, routes: Json[]): string {
    const listener = {
      '@type': LISTENER_TYPE, name: 'ingress', address: { socket_address: { address: '127.0.0.1', port_value: listenerPort } },
      filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
        '@type': HCM_TYPE, stat_prefix: 'ingress_http',
        rds: { route_config_name: 'local_route', config_source: { ads: {}, resource_api_version: 'V3' } },
        http_filters: mirrorHttpFilters(),
      } }] }],
    };
    return JSON.stringify({
      version_info: version,
      resources: [listener, { '@type': ROUTE_TYPE, ...routeConfig(routes) }, ...clusters().map((c) => ({ '@type': CLUSTER_TYPE, ...c }))],
    });
  }

  test('a pushed route naming tsc.js, or a planted file, is NACKed by path and the sidecar process serves on', async () => {
    // 1. A control plane serving a plain route, and a sidecar process that may load hooks only
    //    from typescript's lib directory (where tsc.js, which exits the process when loaded, lives).
    const port = await freeLowPort();
    cp = await startControlPlane({ initialText: resources('v1', port, [{ match: { prefix: '/' }, route: { cluster: 'primary' } }]), listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger() });
    const file = writeConfig('xds.json', xdsSidecarBootstrap({ nodeId: 'hook-trust', cpPort: cp.port }));
    child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--hooks-dir', TSC_DIR, '--log-level', 'error'], { stdio: 'ignore' });
    const url = `http://127.0.0.1:${port}`;
    await until('the sidecar serves v1', async () => (await fetchText(`${url}/v1`, { headersTimeout: 2000, bodyTimeout: 2000 }).catch(() => ({ body: '' }))).body === 'primary', 15_000);

    // 2. tsc.js, inside the allowed directory: loading it tries to exit the process; NACKed.
    cp.setResourcesText(resources('v2', port, [hookedRoute('tsc.js')]));
    await until('v2 NACKed', () => nackedVersion().startsWith('v2-'), 15_000);
    const tscNack = cp.status.lastNack('hook-trust', ROUTE_TYPE)!.error;
    expect(tscNack).toContain('RouteConfiguration "local_route".virtual_hosts[0].routes[0].typed_per_filter_config["sidemirror.filters.http.mirror"].policies[0].hooks.module');
    expect(tscNack).toContain('called process.exit() while loading');

    // 3. A planted file outside it: NACKed too, and it never ran.
    cp.setResourcesText(resources('v3', port, [hookedRoute(planted)]));
    await until('v3 NACKed', () => nackedVersion().startsWith('v3-'), 15_000);
    expect(cp.status.lastNack('hook-trust', ROUTE_TYPE)!.error).toContain('is outside the allowed --hooks-dir');
    expect(fs.existsSync(marker)).toBe(false);

    // 4. The process is alive and still serves the last good routes, unmirrored.
    for (let i = 0; i < 5; i++) expect((await fetchText(`${url}/still/${i}`, { headersTimeout: 5000, bodyTimeout: 5000 })).body).toBe('primary');
    expect(child.exitCode).toBeNull();
    await sleep(200);
    expect(mirror.requests).toHaveLength(0);
    // Three waits of up to 15 s each (loading the 9 MB tsc.js is one of them), and a process start.
  }, 70_000);
});
