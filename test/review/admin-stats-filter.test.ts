import * as http from 'node:http';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// /stats?filter= compiles a client's pattern on the proxy's own event loop. A GET needs no Host
// or Origin check, so any web page the operator opens can send one (a no-cors fetch to the
// admin port). RE2 matching is linear, but building re2js's program for case-folded Unicode
// classes is not cheap: `(?i)\pL` repeated to fill a request line took about 2 s to compile,
// and the listener served nothing meanwhile. Such a pattern must be refused before it is built.

jest.setTimeout(60_000);

/** Far below the 2 s stall seen, generous for a loaded two-core box. */
const SERVED_WITHIN_MS = 700;

let up: Upstream;
let p: TestProxy;

beforeAll(async () => {
  up = await startUpstream({ name: 'primary' });
  p = await startProxy(bootstrap({ listeners: [listener(routeConfig([route('/', 'primary')]))], clusters: [cluster('primary', [up.port])] }));
});

afterAll(async () => {
  await p?.stop();
  await up?.close();
});

/** GET on the admin with a raw path (the backslashes unencoded, so the pattern fits one request line). */
function adminGet(rawPath: string): Promise<{ status: number; body: string }> {
  const u = new URL(p.adminUrl);
  return new Promise((resolve, reject) => {
    const r = http.request({ host: u.hostname, port: Number(u.port), path: rawPath, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('error', reject);
    r.on('timeout', () => r.destroy(new Error('timed out')));
    r.end();
  });
}

test('a stats filter of many case-folded Unicode classes is refused (400) and the listener keeps serving', async () => {
  const pattern = `(?i)${'\\pL'.repeat(4800)}`;
  // Warm the data path first, so the timing below is only what the filter costs.
  expect((await fetchText(`${p.url}/warm`)).status).toBe(200);
  const admin = adminGet(`/stats?filter=${pattern}`);
  // The admin request is written first; the data-plane request queues behind whatever it costs.
  await new Promise((r) => setTimeout(r, 50));
  const served = await fetchText(`${p.url}/during`);
  const refused = await admin;
  expect(served.status).toBe(200);
  expect(refused.status).toBe(400);
  expect(refused.body).toMatch(/filter/);
  expect(served.ms).toBeLessThan(SERVED_WITHIN_MS);
});

test('a short filter of case-folded Unicode classes is refused too (it cost 125 ms to build at 1,000 characters)', async () => {
  const pattern = `(?i)[${'\\pL'.repeat(300)}]`;
  expect(pattern.length).toBeLessThan(1024);
  const r = await adminGet(`/stats?filter=${pattern}`);
  expect(r.status).toBe(400);
  expect(r.body).toMatch(/Unicode classes/);
});

test('a filter with a few Unicode classes, or escaped backslashes before p, is compiled', async () => {
  expect((await adminGet(`/stats?filter=${encodeURIComponent('^cluster\\.\\pL+\\.upstream_rq_total$')}`)).status).toBe(200);
  const r = await adminGet(`/stats?filter=${encodeURIComponent(`${'\\\\p'.repeat(20)}|^cluster\\.primary\\.upstream_rq_total$`)}`);
  expect(r.status).toBe(200);
  expect(r.body.trim()).toMatch(/^cluster\.primary\.upstream_rq_total: \d+$/);
});

test('an ordinary filter still works', async () => {
  const r = await adminGet(`/stats?filter=${encodeURIComponent('^cluster\\.primary\\.upstream_rq_total$')}`);
  expect(r.status).toBe(200);
  expect(r.body.trim()).toMatch(/^cluster\.primary\.upstream_rq_total: \d+$/);
});
