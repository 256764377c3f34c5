import { type ChildProcess, execSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { cluster } from '../harness/bootstrap';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';
import { type Json, awayFromWindowEdge, extBootstrap, extRoute, stat, until } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type TestRedisOptions, freePort, redisCommand, startRedis, startRedisCluster } from '../harness/redis';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// The mirror budget's Redis with its secrets, end to end against a real redis-server: a password
// given inline, by file and by environment variable, an ACL user, TLS (server verified, and with
// a client certificate), a wrong password; and the secrets absent from everything the sidecar
// shows (every admin page, its logs).

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const MINUTE = 60_000;
// Distinctive, so that finding them anywhere is a leak, not a coincidence.
const SECRET = 'Zq7-redis-SECRET-4f1c9';
const ACL_SECRET = 'Yx3-acl-SECRET-88b2e';
const WRONG = 'Wv5-wrong-SECRET-0c0ff';

let primary: Upstream;
let mirror: Upstream;
let dir: string;
let logLines: string[];
const stops: Array<() => Promise<void>> = [];

beforeAll(() => {
  if (!fs.existsSync(CLI)) execSync('npm run build', { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
});

beforeEach(async () => {
  primary = await startUpstream({ name: 'primary' });
  mirror = await startUpstream({ name: 'mirror' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-redis-secrets-'));
  logLines = [];
});

afterEach(async () => {
  while (stops.length > 0) await stops.pop()!();
  await primary.close();
  await mirror.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Every line the proxy logs, at debug, kept in logLines. */
function capturingLogger(): pino.Logger {
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean)); cb(); } });
  return pino({ level: 'debug' }, sink);
}

function config(policies: Json[], filter: Json = {}, port = 0): string {
  return extBootstrap({
    routes: [extRoute('/', 'primary', policies)],
    clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
    filter,
    port,
  });
}

async function sidecar(text: string): Promise<TestProxy> {
  const p = await startProxy(text, { logger: capturingLogger() });
  stops.push(() => p.stop());
  return p;
}

async function redis(o: TestRedisOptions): Promise<Awaited<ReturnType<typeof startRedis>>> {
  const r = await startRedis(o);
  stops.push(() => r.stop());
  return r;
}

function certs(): TestCertificates {
  const c = makeTestCertificates();
  stops.push(async () => c.remove());
  return c;
}

function secretFile(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** A budget of 2 per minute over `conn` (a generous timeout: the box is loaded). */
const budget = (name: string, conn: Json, extra: Json = {}): Json => ({
  name, cluster: 'mirror', limit: { count: 2, time_window: '60s', policy: 'REDIS', redis_connection: { timeout: '2s', ...conn }, ...extra },
});
const server = (port: number): Json => ({ server: { host: '127.0.0.1', port } });

async function send(p: { url: string }, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await fetchText(`${p.url}/${tag}/${i}`);
    expect(res).toMatchObject({ status: 200, body: 'primary' });
  }
}

/** 5 requests → exactly 2 mirrored, 3 limited, none failed: the budget is counted in Redis. */
async function expectBudgetWorks(p: TestProxy, policy: string, windowKey: () => Promise<string | null>): Promise<void> {
  await awayFromWindowEdge(MINUTE);
  await send(p, 5, policy);
  await mirror.waitForRequests(2);
  await sleep(300);
  expect(mirror.requests).toHaveLength(2);
  expect(await stat(p, `mirror_policy.${policy}.skipped.limited`)).toBe(3);
  expect(await stat(p, `mirror_policy.${policy}.skipped.limit_error`)).toBe(0);
  expect(await windowKey()).toBe('5');
}

const windowKey = (policy: string): string[] => ['GET', `sidemirror:mirror-limit:{${policy}}:${Math.floor(Date.now() / MINUTE)}`];

function expectNoSecrets(text: string, what: string): void {
  for (const s of [SECRET, ACL_SECRET, WRONG]) {
    if (text.includes(s)) throw new Error(`${what} shows the secret ${s}`);
  }
}

test('password (inline, Redis requirepass): the budget is counted; the password shows nowhere', async () => {
  const r = await redis({ requirepass: SECRET });
  const p = await sidecar(config([budget('inline', { ...server(r.port), password: SECRET })]));
  await expectBudgetWorks(p, 'inline', () => redisCommand(r.endpoint, windowKey('inline')));
  expectNoSecrets(logLines.join('\n'), 'the logs');
});

test('password_file: read when the config is loaded, one trailing newline dropped', async () => {
  const r = await redis({ requirepass: SECRET });
  const file = secretFile('redis-password', `${SECRET}\n`);
  const p = await sidecar(config([budget('file', { ...server(r.port), password_file: file })]));
  await expectBudgetWorks(p, 'file', () => redisCommand(r.endpoint, windowKey('file')));
});

test('password_env: the sidecar process\'s environment variable', async () => {
  const r = await redis({ requirepass: SECRET });
  process.env.SIDEMIRROR_TEST_REDIS_PASSWORD = SECRET;
  stops.push(async () => void delete process.env.SIDEMIRROR_TEST_REDIS_PASSWORD);
  const p = await sidecar(config([budget('env', { ...server(r.port), password_env: 'SIDEMIRROR_TEST_REDIS_PASSWORD' })]));
  await expectBudgetWorks(p, 'env', () => redisCommand(r.endpoint, windowKey('env')));
});

test('username + password: the budget runs as that Redis ACL user', async () => {
  const r = await redis({ requirepass: SECRET, users: [{ name: 'mirror-budget', password: ACL_SECRET }] });
  const file = secretFile('acl-password', ACL_SECRET);
  const p = await sidecar(config([budget('acl', { ...server(r.port), username: 'mirror-budget', password_file: file })]));
  await expectBudgetWorks(p, 'acl', () => redisCommand(r.endpoint, windowKey('acl')));
  const clients = (await redisCommand(r.endpoint, ['CLIENT', 'LIST'])) ?? '';
  const ours = clients.split('\n').find((l) => l.includes('name=sidemirror-mirror-limit'));
  expect(ours).toContain('user=mirror-budget');
});

test('REDIS_CLUSTER with password_file: every node authenticated, one budget of 2', async () => {
  const rc = await startRedisCluster({ requirepass: SECRET });
  stops.push(() => rc.stop());
  const file = secretFile('cluster-password', SECRET);
  const conn = { cluster: { name: 'secure', nodes: rc.ports.map((port) => ({ host: '127.0.0.1', port })) }, password_file: file };
  const p = await sidecar(config([{ ...budget('rc', conn), limit: { ...(budget('rc', conn).limit as Json), policy: 'REDIS_CLUSTER' } }]));
  await awayFromWindowEdge(MINUTE);
  await send(p, 5, 'rc');
  await mirror.waitForRequests(2);
  await sleep(300);
  expect(mirror.requests).toHaveLength(2);
  expect(await stat(p, 'mirror_policy.rc.skipped.limited')).toBe(3);
  expect(await stat(p, 'mirror_policy.rc.skipped.limit_error')).toBe(0);
  expectNoSecrets(logLines.join('\n'), 'the logs');
});

test('TLS: the server is verified against ca_file (server_name localhost); password over TLS', async () => {
  const c = certs();
  const r = await redis({ tls: c, requirepass: SECRET });
  const p = await sidecar(config([budget('tls', { ...server(r.port), password: SECRET, tls: { ca_file: c.caFile, server_name: 'localhost' } })]));
  await expectBudgetWorks(p, 'tls', () => redisCommand(r.endpoint, windowKey('tls')));
});

test('TLS with a client certificate (tls-auth-clients yes): cert_file and key_file', async () => {
  const c = certs();
  const r = await redis({ tls: c, tlsAuthClients: true });
  const p = await sidecar(config([budget('mtls', { ...server(r.port), tls: { ca_file: c.caFile, cert_file: c.clientCertFile, key_file: c.clientKeyFile } })]));
  await expectBudgetWorks(p, 'mtls', () => redisCommand(r.endpoint, windowKey('mtls')));
});

test('TLS against a server its CA did not sign: no budget (limit_error), the primary unaffected', async () => {
  const c = certs();
  const r = await redis({ tls: c });
  const p = await sidecar(config([budget('badca', { ...server(r.port), timeout: '0.5s', tls: { ca_file: c.otherCaFile } })]));
  await send(p, 3, 'badca');
  await until('3 limit errors', async () => (await stat(p, 'mirror_policy.badca.skipped.limit_error')) === 3, 10_000);
  expect(mirror.requests).toHaveLength(0);
});

test('a wrong password: mirrors skipped as limit_error (on_redis_error SKIP), a log line without the secret', async () => {
  const r = await redis({ requirepass: SECRET });
  const p = await sidecar(config([budget('wrong', { ...server(r.port), password: WRONG, timeout: '0.5s' })]));
  await send(p, 3, 'wrong');
  await until('3 limit errors', async () => (await stat(p, 'mirror_policy.wrong.skipped.limit_error')) === 3, 10_000);
  expect(await stat(p, 'cluster.mirror.shadow.skipped.limit_error')).toBe(3);
  expect(mirror.requests).toHaveLength(0);
  await until('the redis error is logged', () => logLines.some((l) => l.includes('mirror limit: redis error')));
  const line = logLines.find((l) => l.includes('mirror limit: redis error'))!;
  expect(JSON.parse(line)).toMatchObject({ redis: `redis://127.0.0.1:${r.port}/0` });
  expect(line).toMatch(/WRONGPASS|NOAUTH|invalid/i);
  expectNoSecrets(logLines.join('\n'), 'the logs');
});

test('a sidecar process: no admin page and no log line shows a password; /config_dump says [redacted]', async () => {
  const r = await redis({ requirepass: SECRET, users: [{ name: 'acl-user', password: ACL_SECRET }] });
  const port = await freePort();
  const adminPort = await freePort();
  const text = JSON.parse(config([
    { name: 'named', cluster: 'mirror', limit: { count: 2, time_window: '60s', policy: 'REDIS', redis: 'main' } },
    budget('acl', { ...server(r.port), username: 'acl-user', password: ACL_SECRET }),
    budget('wrong', { ...server(r.port), password: WRONG, timeout: '0.5s' }),
  ], { redis: { main: { ...server(r.port), password: SECRET, timeout: '2s' } } }, port)) as Json;
  text.admin = { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } };
  const file = path.join(dir, 'sidecar.yaml');
  fs.writeFileSync(file, JSON.stringify(text));
  const child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--log-level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
  stops.push(() => stopChild(child));
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await until('the sidecar listening', async () => child.exitCode === null && (await canConnect(port)) && (await canConnect(adminPort)), 15_000)
    .catch((err: Error) => { throw new Error(`${err.message}; exit ${child.exitCode}; output: ${output.slice(-2000)}`); });

  await awayFromWindowEdge(MINUTE);
  await send({ url: `http://127.0.0.1:${port}` }, 3, 'proc');
  // Each policy mirrors within its own budget of 2 except `wrong`, whose Redis refuses it.
  await mirror.waitForRequests(4);
  await until('the wrong password logged', () => output.includes('mirror limit: redis error'), 10_000);

  const admin = `http://127.0.0.1:${adminPort}`;
  const pages = ['/config_dump', '/config_dump?include_eds', '/stats', '/stats/prometheus', '/listeners', '/listeners?format=json',
    '/clusters', '/clusters?format=json', '/server_info', '/runtime', '/ready', '/help', '/'];
  for (const page of pages) {
    const res = await fetchText(admin + page);
    expectNoSecrets(res.body, page);
  }
  const dump = (await fetchText(`${admin}/config_dump`)).body;
  // main's password (in the listener), acl's username and password and wrong's password (in the
  // route config): 4 in the bootstrap, 4 in static_listeners, 3 in static_route_configs.
  expect(dump.match(/"\[redacted\]"/g) ?? []).toHaveLength(11);
  const listener = (JSON.parse(dump) as { configs: Array<{ static_listeners?: Array<{ listener: Json }> }> }).configs[1]!.static_listeners![0]!.listener;
  const hcm = (listener as { filter_chains: Array<{ filters: Array<{ typed_config: { http_filters: Array<{ typed_config: Json }> } }> }> })
    .filter_chains[0]!.filters[0]!.typed_config;
  expect(hcm.http_filters[0]!.typed_config).toMatchObject({ redis: { main: { password: '[redacted]', server: { port: r.port } } } });
  expect(output).toContain('mirror limit: redis error');
  expectNoSecrets(output, 'the process output');
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
