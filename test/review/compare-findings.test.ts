import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cluster } from '../harness/bootstrap';
import { CLI, ensureCliBuilt, runCli } from '../harness/cli';
import { extBootstrap, extRoute } from '../harness/mirror-ext';
import { freePort } from '../harness/redis';
import { request as adminRequest } from '../harness/compare-admin';
import { closeAll, heapAfterGc, jsonReply, rig, sleep } from './compare-rig';

// Defects found reviewing response comparison (issue 11), each shown with real sockets. Every test
// in this file FAILS on h-review at a901790 and should pass once its defect is fixed; the review's
// report says what each one saw.

jest.setTimeout(90_000);

afterEach(closeAll);

const KiB = 1024;
const MiB = 1024 * KiB;

// Proves: the README's compare example, pasted as it stands (its `fleet.redis: main` names a
// Redis connection the mirror filter's `redis` map does not have), is refused by `validate` with
// the field's path. Today validate says OK, and `proxy` then starts with the whole mirror policy
// left out (one error log line: no mirroring and no comparison at all).
test('validate refuses compare.fleet naming a Redis connection the filter does not define', async () => {
  ensureCliBuilt();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-review-'));
  try {
    const text = extBootstrap({
      routes: [extRoute('/', 'primary', [{ name: 'cand', cluster: 'candidate', compare: { fleet: { redis: 'main', interval: '5s' } } }])],
      clusters: [cluster('primary', [1]), cluster('candidate', [2])],
    });
    const file = path.join(dir, 'envoy.json');
    fs.writeFileSync(file, text);
    const out = await runCli(['validate', '-c', file]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('policies[0].compare.fleet.redis');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
