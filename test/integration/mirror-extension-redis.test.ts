import { type ChildProcess, execSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cluster } from '../harness/bootstrap';
import { type Json, awayFromWindowEdge, extBootstrap, extRoute, stat, until } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { freePort, redisCommand, startRedis, startRedisCluster } from '../harness/redis';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Mirror budgets kept in Redis, end to end: a real redis-server (or a three-node Redis Cluster)
// started by the tests on free loopback ports, real upstreams, in-process sidecars and sidecar
// processes (`node dist/src/cli.js proxy`). Everything is stopped by its own handle.

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const MINUTE = 60_000;

let primary: Upstream;
let mirror: Upstream;
const stops: Array<() => Promise<void>> = [];

beforeAll(() => {
  if (!fs.existsSync(CLI)) execSync('npm run build', { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
});

beforeEach(async () => {
  primary = await startUpstream({ name: 'primary' });
  mirror = await startUpstream({ name: 'mirror' });
});

afterEach(async () => {
  while (stops.length > 0) await stops.pop()!();
  await primary.close();
  await mirror.close();
});

/** A sidecar's bootstrap: `policies` on the catch-all route, the filter's typed_config `filter`. */
function config(policies: Json[], filter: Json = {}, port = 0): string {
  return extBootstrap({
    routes: [extRoute('/', 'primary', policies)],
    clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
    filter,
    port,
  });
}

async function sidecar(text: string): Promise<TestProxy> {
  const p = await startProxy(text);
  stops.push(() => p.stop());
  return p;
}

// A generous Redis timeout unless a test is about the timeout: on a loaded machine a check past
// the default 100 ms is skipped as limit_error (counted, not mirrored), and the count is off.
const server = (port: number): Json => ({ server: { host: '127.0.0.1', port }, timeout: '2s' });

/** `n` GETs through `p`, each answered by the primary. */
async function send(p: { url: string }, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await fetchText(`${p.url}/${tag}/${i}`);
    expect(res).toMatchObject({ status: 200, body: 'primary' });
  }
}

/** No further shadow arrives: the count at `mirror` stays `n`. */
async function expectMirrored(n: number): Promise<void> {
  if (n > 0) await mirror.waitForRequests(n);
  await sleep(300);
  expect(mirror.requests).toHaveLength(n);
}

test('REDIS: count 2 per 60 s → exactly 2 of 6 requests mirrored; the window\'s key is in Redis', async () => {
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const p = await sidecar(config([{ name: 'rb', cluster: 'mirror', limit: { count: 2, time_window: '60s', policy: 'REDIS', redis: 'main' } }], { redis: { main: server(redis.port) } }));
  await awayFromWindowEdge(MINUTE);
  await send(p, 6, 'r');
  await expectMirrored(2);
  expect(await stat(p, 'mirror_policy.rb.skipped.limited')).toBe(4);
  expect(await stat(p, 'mirror_policy.rb.skipped.limit_error')).toBe(0);
  // Every take is counted in the window's key, limited ones included.
  expect(await redisCommand(redis.port, ['GET', `sidemirror:mirror-limit:{rb}:${Math.floor(Date.now() / MINUTE)}`])).toBe('6');
});

test('two sidecar processes share one Redis budget: 5 requests to each → exactly 3 mirrors in total', async () => {
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-procs-'));
  stops.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
  const policy = { name: 'shared', cluster: 'mirror', limit: { count: 3, time_window: '60s', policy: 'REDIS', redis_connection: server(redis.port) } };
  const ports: number[] = [];
  while (ports.length < 2) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  for (const port of ports) {
    const file = path.join(dir, `sidecar-${port}.yaml`);
    fs.writeFileSync(file, config([policy], {}, port));
    const child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    stops.push(() => stopChild(child));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    await until(`sidecar on ${port} listening`, () => child.exitCode === null && canConnect(port), 15_000)
      .catch((err: Error) => { throw new Error(`${err.message}; exit ${child.exitCode}; stderr: ${stderr}`); });
  }
  await awayFromWindowEdge(MINUTE);
  for (const port of ports) await send({ url: `http://127.0.0.1:${port}` }, 5, `p${port}`);
  expect(primary.requests).toHaveLength(10);
  await expectMirrored(3);
});

test('Redis stopped mid-run: the primary is fine; mirrors are skipped and counted as limit_error', async () => {
  const redis = await startRedis();
  let running = true;
  stops.push(async () => void (running && (await redis.stop())));
  const p = await sidecar(config([{ name: 'down', cluster: 'mirror', limit: { count: 100, time_window: '60s', policy: 'REDIS', redis_connection: server(redis.port) } }]));
  await send(p, 1, 'before');
  await mirror.waitForRequests(1);
  await redis.stop();
  running = false;
  await send(p, 4, 'after');
  await until('4 skips', async () => (await stat(p, 'mirror_policy.down.skipped.limit_error')) === 4);
  expect(await stat(p, 'cluster.mirror.shadow.skipped.limit_error')).toBe(4);
  await expectMirrored(1);
});

test('on_redis_error: ALLOW mirrors anyway while Redis is unreachable', async () => {
  const deadPort = await freePort();
  const p = await sidecar(config([{ name: 'allow', cluster: 'mirror', limit: { count: 1, time_window: '60s', policy: 'REDIS', redis_connection: server(deadPort), on_redis_error: 'ALLOW' } }]));
  await send(p, 3, 'a');
  await expectMirrored(3);
  expect(await stat(p, 'mirror_policy.allow.skipped.limit_error')).toBe(0);
});

test('a hung Redis (SIGSTOP) holds a SYNC primary no longer than the Redis timeout (0.1 s), then skips', async () => {
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const p = await sidecar(config([{
    name: 'hung', cluster: 'mirror', mode: 'SYNC', sync_timeout: '5s',
    limit: { count: 100, time_window: '60s', policy: 'REDIS', redis_connection: { ...server(redis.port), timeout: '0.1s' } },
  }]));
  await send(p, 1, 'warm');
  redis.pause();
  stops.push(async () => redis.resume());
  const res = await fetchText(`${p.url}/hung`);
  expect(res).toMatchObject({ status: 200, body: 'primary' });
  expect(res.ms).toBeLessThan(1000);
  expect(await stat(p, 'mirror_policy.hung.skipped.limit_error')).toBe(1);
  await expectMirrored(1);
});

test('REDIS_CLUSTER: two sidecars, two policies, one key → one budget of 3 across both', async () => {
  const rc = await startRedisCluster();
  stops.push(() => rc.stop());
  const filter = { redis: { rc: { cluster: { name: 'mirrors', nodes: rc.ports.map((port) => ({ host: '127.0.0.1', port })) }, timeout: '2s' } } };
  const limit = { count: 3, time_window: '60s', policy: 'REDIS_CLUSTER', redis: 'rc', key: 'checkout-budget' };
  const a = await sidecar(config([{ name: 'alpha', cluster: 'mirror', limit }], filter));
  const b = await sidecar(config([{ name: 'beta', cluster: 'mirror', limit }], filter));
  await awayFromWindowEdge(MINUTE);
  await send(a, 5, 'a');
  await send(b, 5, 'b');
  await expectMirrored(3);
  const limited = (await stat(a, 'mirror_policy.alpha.skipped.limited')) + (await stat(b, 'mirror_policy.beta.skipped.limited'));
  expect(limited).toBe(7);
  expect((await stat(a, 'mirror_policy.alpha.skipped.limit_error')) + (await stat(b, 'mirror_policy.beta.skipped.limit_error'))).toBe(0);
});

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
