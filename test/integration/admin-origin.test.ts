import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { freePort } from '../harness/redis';

// The sidecar's admin port, as a real process: a web page in the operator's browser must not be
// able to make it quit (CSRF, or a DNS-rebound name), while curl-style requests still can.

jest.setTimeout(60_000);

const CLI = path.resolve(__dirname, '../../dist/src/cli.js');
let child: ChildProcess | null = null;
let dir = '';
let adminPort = 0;

function req(method: string, pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: adminPort, method, path: pathname, headers: { host: `127.0.0.1:${adminPort}`, ...headers }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('error', reject);
    r.on('timeout', () => r.destroy(new Error('timed out')));
    r.end();
  });
}

beforeAll(async () => {
  adminPort = await freePort();
  const listenerPort = await freePort();
  const doc = JSON.parse(bootstrap({ listeners: [listener(routeConfig([route('/', 'primary')]), { port: listenerPort })], clusters: [cluster('primary', [1])] })) as Record<string, unknown>;
  doc.admin = { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } };
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-admin-origin-'));
  const file = path.join(dir, 'envoy.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await req('GET', '/ready').catch(() => null);
    if (r?.status === 200) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('proxy did not start');
    await new Promise((r2) => setTimeout(r2, 100));
  }
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child!.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(t);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('POST /quitquitquit with a foreign Host, Origin or Sec-Fetch-Site is 403 and the proxy keeps running', async () => {
  const forged: Array<Record<string, string>> = [
    { host: `evil.example:${adminPort}` },
    { host: `127.0.0.1:${adminPort + 1}` },
    { host: 'localhost' },
    { origin: 'http://evil.example' },
    { origin: `http://localhost:${adminPort + 1}` },
    { origin: 'null' },
    { 'sec-fetch-site': 'cross-site' },
  ];
  for (const headers of forged) {
    const r = await req('POST', '/quitquitquit', headers);
    expect([r.status, headers]).toEqual([403, headers]);
    expect(r.body).toMatch(/^refused: /);
  }
  for (const p of ['/runtime_modify?a=1', '/reset_counters']) {
    expect((await req('POST', p, { origin: 'http://evil.example' })).status).toBe(403);
  }
  // Envoy's admin: a state change by GET is 405, POST required.
  expect((await req('GET', '/quitquitquit')).status).toBe(405);
  await new Promise((r) => setTimeout(r, 300));
  expect(child!.exitCode).toBeNull();
  expect((await req('GET', '/ready')).status).toBe(200);
  // Reads are not affected by Host (probes and scrapers use many names).
  expect((await req('GET', '/ready', { host: `sidecar.internal:${adminPort}` })).status).toBe(200);
});

test('POST /quitquitquit from this host (same-origin) is obeyed', async () => {
  const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
  const r = await req('POST', '/quitquitquit', { host: `localhost:${adminPort}`, origin: `http://localhost:${adminPort}`, 'sec-fetch-site': 'same-origin' });
  expect(r.status).toBe(200);
  expect(await exited).toBe(0);
});
