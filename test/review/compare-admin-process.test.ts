import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { cluster } from '../harness/bootstrap';
import { CLI, ensureCliBuilt } from '../harness/cli';
import { extBootstrap, extRoute } from '../harness/mirror-ext';
import { freePort } from '../harness/redis';
import { sleep } from './compare-rig';

// The comparison report's admin routes in a real proxy process (review finding 11, issue 11).

jest.setTimeout(90_000);

// Proves: a report page POST whose `back` holds a character Node cannot put in a header still gets
// an answer. Today the admin builds `location: <back>`, writeHead throws outside the handler's
// try, and the request is never answered (the process logs an unhandled rejection and serves on).
describe('the admin process', () => {
  let child: ChildProcess | null = null;
  let adminPort = 0;
  let dir = '';

  const post = (pathname: string, form: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const r = http.request({
        host: '127.0.0.1', port: adminPort, method: 'POST', path: pathname, timeout: 5000,
        headers: { host: `127.0.0.1:${adminPort}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', ...headers },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      r.on('error', reject);
      r.on('timeout', () => r.destroy(new Error('no answer within 5 s')));
      r.end(form);
    });

  beforeAll(async () => {
    ensureCliBuilt();
    adminPort = await freePort();
    const doc = JSON.parse(extBootstrap({
      routes: [extRoute('/', 'primary', [{ name: 'cand', cluster: 'candidate', compare: {} }])],
      clusters: [cluster('primary', [1]), cluster('candidate', [2])],
    })) as Record<string, unknown>;
    doc.admin = { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } };
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-review-'));
    const file = path.join(dir, 'envoy.json');
    fs.writeFileSync(file, JSON.stringify(doc));
    child = spawn(process.execPath, [CLI, 'proxy', '-c', file, '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'ignore'] });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        http.get({ host: '127.0.0.1', port: adminPort, path: '/ready', timeout: 2000 }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        }).on('error', () => resolve(false));
      });
      if (ok) break;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error('proxy did not start');
      await sleep(100);
    }
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a POST whose back= holds a non-Latin-1 character is answered', async () => {
    const res = await post('/mirror/compare/reset', `policy=cand&back=${encodeURIComponent('/mirror/compare?q=\u0100')}`);
    expect([303, 400]).toContain(res.status);
  });
});
