import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { request } from 'undici';
import { type Sandbox, type ServiceName, startSandbox } from '../../examples/route-mirror/sandbox';

// Envoy's route-mirror sandbox, natively: the five steps of its verify script
// (/work/shared/sandbox/README.md), against the built proxy and services in separate processes.

const ROOT = path.resolve(__dirname, '..', '..');
const BUILT = [path.join(ROOT, 'dist', 'src', 'cli.js'), path.join(ROOT, 'dist', 'examples', 'route-mirror', 'service.js')];

/** A loopback port that was free a moment ago (bind to 0, read it, close). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let sandbox: Sandbox;
let P: number;

/** What `curl -s [-H …] http://localhost:P/path` does: the Host header is `localhost:P`. */
async function curl(urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  // localhost may resolve to ::1 first; the listener binds 127.0.0.1, so connect there.
  const res = await request(`http://127.0.0.1:${P}${urlPath}`, { headers: { host: `localhost:${P}`, ...headers } });
  return { status: res.statusCode, body: await res.body.text() };
}

const logs = (name: ServiceName): string[] => sandbox.logs(name);
const getLines = (name: ServiceName): string[] => logs(name).filter((l) => l.includes('GET'));

/** Polls (bounded) until `name`'s log has a line satisfying `pred` `count` times. */
async function waitForLog(name: ServiceName, pred: (line: string) => boolean, count = 1, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (logs(name).filter(pred).length < count) {
    if (Date.now() > deadline) throw new Error(`${name}: expected ${count} matching line(s) within ${timeoutMs} ms; log:\n${logs(name).join('\n')}`);
    await sleep(25);
  }
}

beforeAll(async () => {
  if (BUILT.some((f) => !fs.existsSync(f))) execSync('npm run build', { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
  const ports = [];
  for (let i = 0; i < 5; i++) ports.push(await freePort());
  sandbox = await startSandbox({
    proxyPort: ports[0],
    servicePorts: { service1: ports[1], 'service1-mirror': ports[2], service2: ports[3], 'service2-mirror': ports[4] },
  });
  P = sandbox.proxyPort;
  expect(P).toBe(ports[0]);
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
});

// The steps build on each other, as the verify script's do; they run in file order.

test('step 1: /service/1 answers from service 1', async () => {
  const r = await curl('/service/1');
  expect(r.status).toBe(200);
  expect(r.body).toBe('Hello from behind Envoy (service 1)!\n');
});

test('step 2: service1 saw Host localhost:P; service1-mirror saw localhost-shadow:P and a GET', async () => {
  await waitForLog('service1', (l) => l === `Host: localhost:${P}`);
  await waitForLog('service1-mirror', (l) => l === `Host: localhost-shadow:${P}`);
  await waitForLog('service1-mirror', (l) => l.includes('GET'));
  expect(getLines('service1-mirror')).toHaveLength(1);
  expect(getLines('service1-mirror')[0]).toContain('"GET /service/1 HTTP/1.1" 200');
  expect(logs('service1')).not.toContain(`Host: localhost-shadow:${P}`);
});

test('step 3: /service/2 with x-mirror-cluster: service2-mirror answers from service 2', async () => {
  const r = await curl('/service/2', { 'x-mirror-cluster': 'service2-mirror' });
  expect(r.status).toBe(200);
  expect(r.body).toBe('Hello from behind Envoy (service 2)!\n');
});

test('step 4: service2 saw Host localhost:P; service2-mirror saw localhost-shadow:P and a GET', async () => {
  await waitForLog('service2', (l) => l === `Host: localhost:${P}`);
  await waitForLog('service2-mirror', (l) => l === `Host: localhost-shadow:${P}`);
  await waitForLog('service2-mirror', (l) => l.includes('GET'));
  expect(getLines('service2-mirror')).toHaveLength(1);
  expect(getLines('service2-mirror')[0]).toContain('"GET /service/2 HTTP/1.1" 200');
});

test('step 5: no header or an unknown mirror cluster means no mirror, and the primary is unaffected', async () => {
  const plain = await curl('/service/2');
  expect(plain.status).toBe(200);
  expect(plain.body).toBe('Hello from behind Envoy (service 2)!\n');
  const unknown = await curl('/service/2', { 'x-mirror-cluster': 'service2-mirror-non-existent' });
  expect(unknown.status).toBe(200);
  expect(unknown.body).toBe('Hello from behind Envoy (service 2)!\n');
  // Both primaries logged; a stray shadow would be issued before the primary, so a short settle suffices.
  await waitForLog('service2', (l) => l.includes('GET'), 3);
  await sleep(300);
  expect(getLines('service2-mirror')).toHaveLength(1);
  expect(getLines('service1-mirror')).toHaveLength(1);
  expect(getLines('service2')).toHaveLength(3);
});
