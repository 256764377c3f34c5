import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, request } from 'undici';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { HCM_TYPE, ROUTER_TYPE, bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type Upstream, closedPort, sleep, startUpstream } from '../harness/upstream';

// `sidemirror proxy --concurrency 2` as a real process tree: a supervisor and two workers sharing
// the listener through node:cluster. Every test starts and stops its own processes by handle.

jest.setTimeout(60_000);

type Json = Record<string, unknown>;
const CLI = path.resolve(__dirname, '../../dist/src/cli.js');

interface Spawned {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  readonly file: string;
  stderr(): string;
  stop(): Promise<void>;
}

/** Resolves true once `child` has exited, false after `ms`. */
function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function getText(url: string, init: Parameters<typeof request>[1] = {}): Promise<{ status: number; body: string }> {
  const res = await request(url, { ...init, headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: res.statusCode, body: await res.body.text() };
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Polls `check` every 100 ms until it holds; throws with `what` after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline && i < 1000; i++) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const tracked: Spawned[] = [];
const dirs: string[] = [];

/** Spawns the supervisor on `text`; resolves once the admin is /ready (and the listener accepts, unless `listenerLater`). */
async function spawnProxy(text: string, ports: { listener: number; admin: number }, listenerLater = false): Promise<Spawned> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-workers-'));
  dirs.push(dir);
  const file = path.join(dir, 'envoy.json');
  fs.writeFileSync(file, text);
  const child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--concurrency', '2', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString('utf8')).slice(-20_000); });
  const workerPids = new Set<number>();
  const adminUrl = `http://127.0.0.1:${ports.admin}`;
  const handle: Spawned = {
    child,
    url: `http://127.0.0.1:${ports.listener}`,
    adminUrl,
    file,
    stderr: () => stderr,
    async stop() {
      // Remember the workers, so none outlives a supervisor that had to be killed.
      const info = await serverInfo(handle).catch(() => null);
      for (const w of info?.workers ?? []) workerPids.add(w.pid);
      child.kill('SIGTERM');
      if (!(await exited(child, 8000))) {
        child.kill('SIGKILL');
        await exited(child, 5000);
      }
      for (const pid of workerPids) {
        for (let i = 0; i < 30 && alive(pid); i++) await sleep(100);
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      }
    },
  };
  tracked.push(handle);
  const started = Date.now();
  await until('the supervisor to be ready', async () => {
    if (child.exitCode !== null) throw new Error(`proxy exited ${child.exitCode}: ${stderr}`);
    return (await getText(`${adminUrl}/ready`)).status === 200 && (listenerLater || canConnect(ports.listener));
  }, 15_000).catch((err: Error) => { throw new Error(`${err.message} (${Date.now() - started} ms); stderr: ${stderr}`); });
  return handle;
}

async function serverInfo(p: Spawned): Promise<{ workers: Array<{ pid: number; downstream_rq_total: number }> }> {
  return JSON.parse((await getText(`${p.adminUrl}/server_info`)).body) as { workers: Array<{ pid: number; downstream_rq_total: number }> };
}

async function stat(p: Spawned, name: string): Promise<number> {
  const { body } = await getText(`${p.adminUrl}/stats`);
  const line = body.split('\n').find((l) => l.startsWith(`${name}: `));
  return line ? Number(line.slice(name.length + 2)) : 0;
}

/** `n` GETs, each on its own new connection, `parallel` at a time; returns `status body` per request. */
async function sendFresh(url: string, n: number, parallel = 10): Promise<string[]> {
  const out: string[] = [];
  for (let done = 0; done < n; done += parallel) {
    const batch = Array.from({ length: Math.min(parallel, n - done) }, async (_, i) => {
      const client = new Client(url, { pipelining: 1, connect: { timeout: 5000 } });
      try {
        const res = await client.request({ path: `/r/${done + i}`, method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 });
        return `${res.statusCode} ${await res.body.text()}`;
      } finally {
        await client.close();
      }
    });
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** A free loopback port: bind 0, close. */
const freePort = closedPort;

async function ports(): Promise<{ listener: number; admin: number }> {
  const listenerPort = await freePort();
  let admin = await freePort();
  for (let i = 0; i < 10 && admin === listenerPort; i++) admin = await freePort();
  return { listener: listenerPort, admin };
}

/** A static bootstrap with a fixed listener and admin port. */
function staticBootstrap(p: { listener: number; admin: number }, routes: Json[], clusters: Json[]): string {
  const doc = JSON.parse(bootstrap({ listeners: [listener(routeConfig(routes), { port: p.listener })], clusters })) as Json;
  doc.admin = { address: { socket_address: { address: '127.0.0.1', port_value: p.admin } } };
  return JSON.stringify(doc, null, 2);
}

const upstreams: Upstream[] = [];
async function upstream(name: string): Promise<Upstream> {
  const u = await startUpstream({ name });
  upstreams.push(u);
  return u;
}

afterEach(async () => {
  for (const p of tracked.splice(0)) await p.stop();
  for (const u of upstreams.splice(0)) await u.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('--concurrency 2', () => {
  test('both workers serve, and /server_info counts each one\'s requests', async () => {
    const primary = await upstream('primary');
    const p = await ports();
    const proxy = await spawnProxy(staticBootstrap(p, [route('/', 'primary')], [cluster('primary', [primary.port])]), p);
    const total = 200;
    const answers = await sendFresh(proxy.url, total);
    expect(answers.filter((a) => a === '200 primary')).toHaveLength(total);
    const { workers } = await serverInfo(proxy);
    expect(workers).toHaveLength(2);
    expect(new Set(workers.map((w) => w.pid)).size).toBe(2);
    for (const w of workers) expect(w.downstream_rq_total).toBeGreaterThan(0);
    expect(workers.reduce((s, w) => s + w.downstream_rq_total, 0)).toBe(total);
    // --log-level warn holds in the workers too: no info lines (e.g. "listener started").
    expect(proxy.stderr()).not.toContain('"level":30');
  });

  test('stats are aggregated over the workers (/stats, /stats/prometheus, shadow counters)', async () => {
    const primary = await upstream('primary');
    const mirror = await upstream('mirror');
    const p = await ports();
    const routes = [route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })];
    const proxy = await spawnProxy(staticBootstrap(p, routes, [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])]), p);
    const total = 150;
    expect((await sendFresh(proxy.url, total)).filter((a) => a === '200 primary')).toHaveLength(total);
    await mirror.waitForRequests(total, 10_000);
    expect(await stat(proxy, 'http.ingress_http.downstream_rq_total')).toBe(total);
    expect(await stat(proxy, 'cluster.primary.upstream_rq_total')).toBe(total);
    await until('every shadow to be counted', async () => (await stat(proxy, 'cluster.mirror.shadow.sent')) === total, 5000);
    const prom = (await getText(`${proxy.adminUrl}/stats/prometheus`)).body;
    expect(prom).toContain(`envoy_cluster_upstream_rq_total{envoy_cluster_name="primary"} ${total}\n`);
    expect(prom).toContain(`envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"} ${total}\n`);
    // Both workers took part, so the figures above are sums, not one worker's.
    const { workers } = await serverInfo(proxy);
    expect(workers.filter((w) => w.downstream_rq_total > 0)).toHaveLength(2);
  });

  test('SIGHUP reloads the file in every worker; an invalid file keeps the previous config', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    const mirror2 = await upstream('mirror2');
    const p = await ports();
    const clusters = [cluster('A', [a.port]), cluster('B', [b.port]), cluster('mirror2', [mirror2.port])];
    const proxy = await spawnProxy(staticBootstrap(p, [route('/', 'A')], clusters), p);
    expect(new Set(await sendFresh(proxy.url, 20))).toEqual(new Set(['200 A']));

    fs.writeFileSync(proxy.file, staticBootstrap(p, [route('/', 'B', { request_mirror_policies: [{ cluster: 'mirror2' }] })], clusters));
    proxy.child.kill('SIGHUP');
    await until('both workers to answer from B', async () => (await sendFresh(proxy.url, 10)).every((x) => x === '200 B'), 10_000);
    // While the reload spreads, a probe may still have reached A; from here on, none may.
    const aBefore = a.requests.length;
    const before = mirror2.requests.length;
    const answers = await sendFresh(proxy.url, 100);
    expect(answers.filter((x) => x === '200 B')).toHaveLength(100);
    await mirror2.waitForRequests(before + 100, 10_000);
    expect(a.requests.length).toBe(aBefore);

    // An invalid file: the supervisor rejects it, nothing changes, nobody dies.
    const pidsBefore = (await serverInfo(proxy)).workers.map((w) => w.pid).sort();
    fs.writeFileSync(proxy.file, '{"static_resources": {"clusters": [{"name": "A", "type": "NOT_A_TYPE"}]');
    proxy.child.kill('SIGHUP');
    await sleep(500);
    expect(proxy.child.exitCode).toBeNull();
    const after = await sendFresh(proxy.url, 100);
    expect(after.filter((x) => x === '200 B')).toHaveLength(100);
    expect((await serverInfo(proxy)).workers.map((w) => w.pid).sort()).toEqual(pidsBefore);
    expect(proxy.stderr()).toContain('SIGHUP reload rejected');
  });

  test('xDS updates from the one ADS stream reach every worker', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    const p = await ports();
    const resources = (target: string, version: string): string => JSON.stringify({
      version_info: version,
      resources: [
        { '@type': LISTENER_TYPE, name: 'ingress', address: { socket_address: { address: '127.0.0.1', port_value: p.listener } },
          filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
            '@type': HCM_TYPE, stat_prefix: 'ingress_http',
            rds: { route_config_name: 'local_route', config_source: { ads: {}, resource_api_version: 'V3' } },
            http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
          } }] }] },
        { '@type': ROUTE_TYPE, ...routeConfig([route('/', target)]) },
        { '@type': CLUSTER_TYPE, ...cluster('A', [a.port]) },
        { '@type': CLUSTER_TYPE, ...cluster('B', [b.port]) },
      ],
    });
    const cp: ControlPlane = await startControlPlane({ initialText: resources('A', 'v1'), listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger() });
    try {
      const text = JSON.stringify({
        node: { id: 'sidecar-1', cluster: 'front' },
        admin: { address: { socket_address: { address: '127.0.0.1', port_value: p.admin } } },
        dynamic_resources: {
          ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds_cluster' } }] },
          cds_config: { ads: {}, resource_api_version: 'V3' },
          lds_config: { ads: {}, resource_api_version: 'V3' },
        },
        static_resources: { clusters: [cluster('xds_cluster', [cp.port], { typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: {} },
          },
        } })] },
      });
      const proxy = await spawnProxy(text, p, true);
      await until('both workers to answer from A', async () => (await sendFresh(proxy.url, 10)).every((x) => x === '200 A'), 15_000);
      expect((await sendFresh(proxy.url, 50)).filter((x) => x === '200 A')).toHaveLength(50);

      cp.setResourcesText(resources('B', 'v2'));
      await until('both workers to answer from B', async () => (await sendFresh(proxy.url, 10)).every((x) => x === '200 B'), 10_000);
      const before = a.requests.length;
      const answers = await sendFresh(proxy.url, 100);
      expect(answers.filter((x) => x === '200 B')).toHaveLength(100);
      expect(a.requests.length).toBe(before);
      // A replacement worker is handed the accepted xDS state (B), not the bootstrap's nothing.
      const victim = (await serverInfo(proxy)).workers[0]!.pid;
      process.kill(victim, 'SIGKILL');
      await until('a replacement worker', async () => {
        const pids = (await serverInfo(proxy)).workers.map((w) => w.pid);
        return pids.length === 2 && !pids.includes(victim);
      }, 30_000);
      expect((await sendFresh(proxy.url, 100)).filter((x) => x === '200 B')).toHaveLength(100);
      expect(a.requests.length).toBe(before);
    } finally {
      for (const t of tracked.splice(0)) await t.stop();
      await cp.close();
    }
  });

  test('/runtime_modify reaches every worker', async () => {
    const primary = await upstream('primary');
    const mirror = await upstream('mirror');
    const p = await ports();
    const policy = { cluster: 'mirror', runtime_fraction: { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: 'm' } };
    const routes = [route('/', 'primary', { request_mirror_policies: [policy] })];
    const proxy = await spawnProxy(staticBootstrap(p, routes, [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])]), p);
    // Default 100 %: every request is mirrored, by both workers.
    expect((await sendFresh(proxy.url, 20)).filter((x) => x === '200 primary')).toHaveLength(20);
    await mirror.waitForRequests(20, 10_000);

    const counts = new Map((await serverInfo(proxy)).workers.map((w) => [w.pid, w.downstream_rq_total]));
    const res = await getText(`${proxy.adminUrl}/runtime_modify?m=0`, { method: 'POST' });
    expect(res.status).toBe(200);
    const answers = await sendFresh(proxy.url, 100);
    expect(answers.filter((x) => x === '200 primary')).toHaveLength(100);
    await sleep(300); // any stray shadow would land by now
    expect(mirror.requests.length).toBe(20);
    expect(primary.requests.length).toBe(120);
    // Both workers served some of the 100, and neither mirrored any.
    const after = (await serverInfo(proxy)).workers;
    expect(after.filter((w) => w.downstream_rq_total > (counts.get(w.pid) ?? Infinity))).toHaveLength(2);
  });

  test('a killed worker is replaced, with the runtime overrides, and requests still succeed', async () => {
    const primary = await upstream('primary');
    const mirror = await upstream('mirror');
    const p = await ports();
    const policy = { cluster: 'mirror', runtime_fraction: { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: 'm' } };
    const routes = [route('/', 'primary', { request_mirror_policies: [policy] })];
    const proxy = await spawnProxy(staticBootstrap(p, routes, [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])]), p);
    expect((await getText(`${proxy.adminUrl}/runtime_modify?m=0`, { method: 'POST' })).status).toBe(200);
    const first = (await serverInfo(proxy)).workers.map((w) => w.pid);
    expect(first).toHaveLength(2);
    const victim = first[0]!;
    process.kill(victim, 'SIGKILL');
    let now: number[] = [];
    await until('a replacement worker', async () => {
      now = (await serverInfo(proxy)).workers.map((w) => w.pid);
      return now.length === 2 && !now.includes(victim);
    }, 20_000).catch((err: Error) => { throw new Error(`${err.message}; workers answering: ${JSON.stringify(now)}; stderr: ${proxy.stderr()}`); });
    expect(now).toContain(first[1]);
    expect(alive(victim)).toBe(false);
    const answers = await sendFresh(proxy.url, 100);
    expect(answers.filter((x) => x === '200 primary')).toHaveLength(100);
    const { workers } = await serverInfo(proxy);
    expect(workers.filter((w) => w.downstream_rq_total > 0)).toHaveLength(2);
    // The new worker got m=0 replayed: no request of either worker was mirrored.
    await sleep(300);
    expect(mirror.requests).toHaveLength(0);
    expect(proxy.stderr()).toContain('worker died');
  });
});
