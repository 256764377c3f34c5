import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLUSTER_TYPE } from '../../src/config/resources';
import { checkResourceSet } from '../../src/control-plane/cache/consistency';
import { SnapshotTooLargeError } from '../../src/control-plane/cache/message-size';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { parseResourcesText } from '../../src/control-plane/resources-file';
import { silentLogger } from '../../src/log/logger';
import { freePort } from '../harness/redis';
import { XdsTestClient } from './xds-client';

// The control plane as operators run it (the CLI, a real process) and in-process where the test
// needs its handle: tokens on the admin API and xDS, browser-forgery checks, and the bounds on
// what clients can make it keep (NACK details, override floods, oversized snapshots).

jest.setTimeout(120_000);

const CLI = path.resolve(__dirname, '../../dist/src/cli.js');
const UNAUTHENTICATED = 16;
type Json = Record<string, unknown>;

function staticCluster(name: string, extra: Json = {}): Json {
  return {
    '@type': CLUSTER_TYPE, name, type: 'STATIC', connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 1 } } } }] }] },
    ...extra,
  };
}
const RESOURCES = JSON.stringify({ resources: [staticCluster('service1')] });

const dirs: string[] = [];
function tempFile(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-cpsec-'));
  dirs.push(dir);
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

interface Spawned {
  readonly child: ChildProcess;
  output(): string;
  exited(): Promise<number | null>;
}

function spawnCli(args: string[], nodeArgs: string[] = []): Spawned {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let outBytes = 0;
  const keep = (c: Buffer): void => {
    outBytes += c.length;
    out = (out + c.toString('utf8')).slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const s = { child, output: () => out, exited: () => exit, bytes: () => outBytes };
  spawned.push(s);
  return s;
}
const spawned: Array<Spawned & { bytes(): number }> = [];

afterAll(async () => {
  for (const s of spawned) {
    if (s.child.exitCode === null && s.child.signalCode === null) {
      s.child.kill('SIGTERM');
      const t = setTimeout(() => s.child.kill('SIGKILL'), 5000);
      await s.exited();
      clearTimeout(t);
    }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Starts `sidemirror control-plane` and waits until its admin API answers. */
async function startCli(extra: string[], adminHeaders: Record<string, string> = {}, nodeArgs: string[] = []): Promise<{ s: Spawned & { bytes(): number }; grpc: number; admin: number }> {
  const grpc = await freePort();
  let admin = await freePort();
  while (admin === grpc) admin = await freePort();
  const file = tempFile('resources.json', RESOURCES);
  spawnCli(['control-plane', '-c', file, '--listen', `127.0.0.1:${grpc}`, '--admin', `127.0.0.1:${admin}`, ...extra], nodeArgs);
  const s = spawned[spawned.length - 1]!;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await req(admin, 'GET', '/ready', { headers: adminHeaders }).catch(() => null);
    if (r && r.status === 200) break;
    if (s.child.exitCode !== null || Date.now() > deadline) throw new Error(`control plane did not start:\n${s.output()}`);
    await new Promise((r2) => setTimeout(r2, 100));
  }
  return { s, grpc, admin };
}

/** One HTTP request with exactly the headers given (node:http, so Host can be anything). */
function req(port: number, method: string, pathname: string, o: { headers?: Record<string, string>; body?: string } = {}):
  Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path: pathname, headers: { host: `127.0.0.1:${port}`, ...o.headers }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('error', reject);
    r.on('timeout', () => r.destroy(new Error('request timed out')));
    r.end(o.body);
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

describe('command line', () => {
  test('a non-loopback --admin without --admin-token-file is refused with one line', async () => {
    const file = tempFile('resources.json', RESOURCES);
    const s = spawnCli(['control-plane', '-c', file, '--listen', '127.0.0.1:0', '--admin', '0.0.0.0:0']);
    expect(await s.exited()).not.toBe(0);
    const lines = s.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('is not a loopback address');
  });

  test('an empty token file is refused with one line', async () => {
    const file = tempFile('resources.json', RESOURCES);
    const token = tempFile('token', '  \n');
    const s = spawnCli(['control-plane', '-c', file, '--listen', '127.0.0.1:0', '--admin-token-file', token]);
    expect(await s.exited()).toBe(2);
    expect(s.output().trim().split('\n')).toEqual([`--admin-token-file ${token}: the file is empty`]);
  });
});

describe('with --admin-token-file and --xds-token-file', () => {
  let cp: { s: Spawned; grpc: number; admin: number };
  const auth = { authorization: 'Bearer s3cret-admin' };
  beforeAll(async () => {
    const adminToken = tempFile('admin-token', 's3cret-admin\n');
    const xdsToken = tempFile('xds-token', ' s3cret-xds ');
    cp = await startCli(['--admin-token-file', adminToken, '--xds-token-file', xdsToken], auth);
  });

  test('admin requests need the bearer token: 401 without or with a wrong one, 200 with it', async () => {
    for (const p of ['/snapshot', '/nodes', '/ready']) {
      const none = await req(cp.admin, 'GET', p);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(none.body).not.toContain('service1');
      expect((await req(cp.admin, 'GET', p, { headers: { authorization: 'Bearer s3cret-admiN' } })).status).toBe(401);
      expect((await req(cp.admin, 'GET', p, { headers: { authorization: 's3cret-admin' } })).status).toBe(401);
      expect((await req(cp.admin, 'GET', p, { headers: auth })).status).toBe(200);
    }
    const put = await req(cp.admin, 'PUT', '/snapshot', { body: RESOURCES });
    expect(put.status).toBe(401);
    expect((await req(cp.admin, 'PUT', '/snapshot', { body: RESOURCES, headers: auth })).status).toBe(200);
  });

  test('an xDS stream without the token is refused UNAUTHENTICATED; with it, it is served', async () => {
    const anon = new XdsTestClient(cp.grpc);
    const wrong = new XdsTestClient(cp.grpc, undefined, { authorization: 'Bearer nope' });
    const good = new XdsTestClient(cp.grpc, undefined, { authorization: 'Bearer s3cret-xds' });
    try {
      for (const c of [anon, wrong, good]) c.send({ node: { id: 'n1', cluster: 'c' }, type_url: CLUSTER_TYPE });
      expect((await anon.ended(10_000)).code).toBe(UNAUTHENTICATED);
      expect((await wrong.ended(10_000)).code).toBe(UNAUTHENTICATED);
      const r = await good.next(10_000);
      expect(r.names).toEqual(['service1']);
    } finally {
      for (const c of [anon, wrong, good]) c.close();
    }
    const metrics = await req(cp.admin, 'GET', '/metrics', { headers: auth });
    expect(metrics.body).toMatch(/sidemirror_cp_streams_refused_total\{reason="unauthenticated"\} 2/);
  });
});

describe('without tokens (loopback only)', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane({ initialText: RESOURCES, listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, logger: silentLogger() });
  });
  afterAll(() => cp.close());

  test('PUT /snapshot with a foreign Host, a foreign Origin or Sec-Fetch-Site: cross-site is 403; the snapshot stays', async () => {
    const port = cp.adminPort!;
    const before = cp.cache.version;
    const changed = JSON.stringify({ resources: [staticCluster('evil')] });
    const forged: Array<Record<string, string>> = [
      { host: `evil.example:${port}` },
      { host: `127.0.0.1:${port + 1}` },
      { origin: 'http://evil.example' },
      { origin: `http://127.0.0.1:${port + 1}` },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of forged) {
      const r = await req(port, 'PUT', '/snapshot', { body: changed, headers });
      expect([r.status, headers]).toEqual([403, headers]);
      expect(JSON.parse(r.body).error).toMatch(/^refused: /);
    }
    expect(cp.cache.version).toBe(before);
    // Reads are refused under a rebound name too: there is no token to keep the config private.
    expect((await req(port, 'GET', '/snapshot', { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
      const ok = await req(port, 'PUT', '/snapshot', { body: RESOURCES, headers: { host, origin: `http://${host}` } });
      expect(ok.status).toBe(200);
    }
  });
});

describe('bounds', () => {
  test('a NACK flood (40 streams × 3 MB error_detail) keeps RSS growth bounded and 4 KiB stored per NACK', async () => {
    // A 48 MB heap: 40 kept 3 MB details (120 MB) would not fit, so surviving proves they are not kept.
    const { s, grpc, admin } = await startCli(['--log-level', 'info'], {}, ['--max-old-space-size=48']);
    const pid = s.child.pid!;
    const baseline = rssBytes(pid);
    const logBefore = s.bytes();
    const detail = 'x'.repeat(3 * 1024 * 1024);
    const clients: XdsTestClient[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const c = new XdsTestClient(grpc);
        clients.push(c);
        c.send({ node: { id: `flood-${i}`, cluster: 'c' }, type_url: CLUSTER_TYPE });
      }
      const responses = await Promise.all(clients.map((c) => c.next(20_000)));
      // One NACK at a time: what is kept shows in RSS, not what is in flight.
      const nacksSeen = async (): Promise<number> => {
        const m = /sidemirror_cp_nacks_total\{type="cds"\} (\d+)/.exec((await req(admin, 'GET', '/metrics')).body);
        return m ? Number(m[1]) : 0;
      };
      for (const [i, c] of clients.entries()) {
        c.send({ node: { id: `flood-${i}`, cluster: 'c' }, type_url: CLUSTER_TYPE, response_nonce: responses[i]!.nonce, error_detail: { code: 3, message: detail } });
        const until = Date.now() + 20_000;
        while ((await nacksSeen()) < i + 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      }
      // Every NACK recorded (and each kept to 4 KiB).
      const deadline = Date.now() + 60_000;
      let nodes: Record<string, { types: { cds?: { last_nack: { error: string } | null } } }> = {};
      for (;;) {
        nodes = JSON.parse((await req(admin, 'GET', '/nodes')).body);
        const nacked = Object.values(nodes).filter((n) => n.types.cds?.last_nack);
        if (nacked.length === 40 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const errors = Object.values(nodes).map((n) => n.types.cds?.last_nack?.error ?? '');
      expect(errors.filter((e) => e.length > 0)).toHaveLength(40);
      for (const e of errors) {
        expect(Buffer.byteLength(e)).toBeLessThanOrEqual(4096 + 64);
        expect(e).toMatch(/… \[truncated, 3145728 bytes\]$/);
      }
      const growth = rssBytes(pid) - baseline;
      const logGrowth = s.bytes() - logBefore;
      process.stdout.write(`NACK flood: RSS +${Math.round(growth / 1e6)} MB, log +${logGrowth} bytes\n`);
      // RSS counts grpc's receive buffers (external memory, released lazily), so it is a loose
      // bound; the 48 MB heap is the tight one (with details kept whole, the process dies of OOM:
      // checked by hand). The issue measured +377 MB RSS and ~120 MB of log for this flood.
      expect(growth).toBeLessThan(300 * 1024 * 1024);
      expect(logGrowth).toBeLessThan(2 * 1024 * 1024);
    } finally {
      for (const c of clients) c.close();
    }
  });

  test('an override flood (1000 cluster × 1000 id overrides) is checked quickly and in bounded memory', async () => {
    const doc: { resources: Json[]; node_overrides: Json[] } = { resources: [staticCluster('base')], node_overrides: [] };
    for (let i = 0; i < 1000; i++) doc.node_overrides.push({ node: { cluster: `c${i}` }, resources: [staticCluster(`k${i}`)] });
    for (let i = 0; i < 1000; i++) doc.node_overrides.push({ node: { id: `n${i}` }, resources: [staticCluster(`x${i}`)] });
    const text = JSON.stringify(doc);
    // The consistency check alone: was a million overlays (seconds, ~400 MB), now one pass.
    const set = parseResourcesText(text);
    if (!('base' in set)) throw set;
    const t0 = performance.now();
    expect(checkResourceSet(set)).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(1000);

    const { s, admin } = await startCli([]);
    const pid = s.child.pid!;
    const baseline = rssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(pid)); }, 20);
    try {
      const started = performance.now();
      const r = await req(admin, 'PUT', '/snapshot', { body: text });
      const ms = performance.now() - started;
      process.stdout.write(`override flood PUT: ${Buffer.byteLength(text)} bytes, ${Math.round(ms)} ms, peak RSS +${Math.round((Math.max(peak, rssBytes(pid)) - baseline) / 1e6)} MB\n`);
      expect(r.status).toBe(200);
      // Parsing 600 KB of YAML/JSON still takes ~2 s on this box; the bound is for a loaded machine.
      expect(ms).toBeLessThan(15_000);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssBytes(pid));
    // Before: ~540 MB above baseline for this PUT.
    expect(peak - baseline).toBeLessThan(250 * 1024 * 1024);
  });

  test('an oversized snapshot is refused with 413 naming size and limit, and no node is sent it', async () => {
    const limit = 64 * 1024;
    const cp = await startControlPlane({ initialText: RESOURCES, listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, logger: silentLogger(), maxMessageBytes: limit });
    const client = new XdsTestClient(cp.port);
    try {
      client.send({ node: { id: 'n1', cluster: 'c' }, type_url: CLUSTER_TYPE });
      const first = await client.next(10_000);
      client.send({ node: { id: 'n1', cluster: 'c' }, type_url: CLUSTER_TYPE, version_info: first.version_info, response_nonce: first.nonce });
      const before = cp.cache.version;
      // 40 clusters of ~4 KB each (the name is in the cluster and its load assignment): a body over the limit is refused before it is parsed.
      const big = JSON.stringify({ resources: Array.from({ length: 40 }, (_, i) => staticCluster(`c${i}-${'a'.repeat(2000)}`)) });
      const size = Buffer.byteLength(big);
      expect(size).toBeGreaterThan(limit);
      const tooBig = await req(cp.adminPort!, 'PUT', '/snapshot', { body: big });
      expect(tooBig.status).toBe(413);
      expect(JSON.parse(tooBig.body).error).toContain(`body of ${size} bytes is over the limit of ${limit} bytes`);
      // JSON is larger than its protobuf, so a body under the limit fits a message for the base;
      // a node override over a base can still not fit: refused (a file source takes this path).
      const viaOverride = JSON.stringify({
        resources: Array.from({ length: 20 }, (_, i) => staticCluster(`b${i}-${'a'.repeat(1000)}`)),
        node_overrides: [{ node: { id: 'n1' }, resources: Array.from({ length: 20 }, (_, i) => staticCluster(`o${i}-${'b'.repeat(1000)}`)) }],
      });
      let thrown: unknown = null;
      try {
        cp.setResourcesText(viaOverride);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(SnapshotTooLargeError);
      const issue = (thrown as SnapshotTooLargeError).issues[0]!;
      expect(issue.path).toBe('node_overrides[0]');
      expect(issue.message).toMatch(new RegExp(`CDS response for nodes with id "n1" would be \\d+ bytes, over the limit of ${limit} bytes`));
      expect(cp.cache.version).toBe(before);
      await client.expectNothing(500);
    } finally {
      client.close();
      await cp.close();
    }
  });

  test('a resources file whose responses would exceed the limit is refused at start', async () => {
    const file = tempFile('big.json', JSON.stringify({ resources: Array.from({ length: 10 }, (_, i) => staticCluster(`c${i}-${'a'.repeat(1000)}`)) }));
    await expect(startControlPlane({ resourcesFile: file, listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger(), maxMessageBytes: 8192 }))
      .rejects.toThrow(/CDS response for every node would be \d+ bytes, over the limit of 8192 bytes/);
  });
});
