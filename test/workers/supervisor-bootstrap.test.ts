import cluster from 'node:cluster';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/log/logger';
import { Supervisor } from '../../src/workers/supervisor';
import { bootstrap, listener, routeConfig } from '../harness/bootstrap';

// The supervisor in this process, its workers a stand-in script: a worker that dies while it is
// being bootstrapped must fail start(), not leave it waiting forever.

jest.setTimeout(20_000);

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-sup-'));
});
afterEach(() => {
  for (const w of Object.values(cluster.workers ?? {})) if (w && !w.isDead()) w.process.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a worker that dies mid-bootstrap makes start() reject instead of hanging', async () => {
  const worker = path.join(dir, 'dying-worker.js');
  // Exits as soon as the bootstrap arrives, before answering ready or failed.
  fs.writeFileSync(worker, "process.on('message', () => process.exit(3));\n");
  const config = path.join(dir, 'envoy.json');
  fs.writeFileSync(config, bootstrap({ listeners: [listener(routeConfig([]), { port: 0 })], clusters: [] }));
  cluster.setupPrimary({ exec: worker, args: [], silent: true });
  const sup = new Supervisor({ configFile: config, workers: 1, logger: silentLogger(), proxy: { drainTimeoutMs: 0, shadowLimits: {}, hookDirs: [] }, commandLine: {} });
  const outcome = await Promise.race([
    sup.start().then(() => 'started', (err: Error) => `rejected: ${err.message}`),
    new Promise<string>((r) => setTimeout(() => r('still waiting'), 5000).unref()),
  ]);
  expect(outcome).toMatch(/^rejected: worker \d+/);
});
