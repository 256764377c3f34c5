// The bounds on shadows over every mirror cluster together (not only per cluster): shadows in
// flight and body bytes held. What passes them is dropped and counted; the primary never notices.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { ShadowLimits } from '../../src/shadow/writer';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { stat, until } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, type UpstreamOptions, startUpstream } from '../harness/upstream';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await Promise.resolve(cleanups.pop()!()).catch(() => undefined);
});

/** A primary and three mirror clusters, every request shadowed to all three. */
async function setup(mirror: UpstreamOptions, limits: Partial<ShadowLimits>): Promise<{ p: TestProxy; primary: Upstream }> {
  const start = async (o: UpstreamOptions): Promise<Upstream> => {
    const u = await startUpstream(o);
    cleanups.push(() => u.close());
    return u;
  };
  const primary = await start({ name: 'primary' });
  const mirrors = await Promise.all(['m1', 'm2', 'm3'].map((name) => start({ name, ...mirror })));
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary', { request_mirror_policies: ['m1', 'm2', 'm3'].map((c) => ({ cluster: c })) })]))],
    clusters: [cluster('primary', [primary.port]), ...mirrors.map((m, i) => cluster(`m${i + 1}`, [m.port]))],
  }), { shadowLimits: limits });
  cleanups.push(() => p.stop());
  return { p, primary };
}

const dropped = async (p: TestProxy, reason: string): Promise<number> =>
  (await Promise.all(['m1', 'm2', 'm3'].map((c) => stat(p, `cluster.${c}.shadow.dropped.${reason}`)))).reduce((a, b) => a + b, 0);

test('the total in-flight cap counts shadows of every cluster together', async () => {
  // Per cluster the cap is far away; over all three, 4 shadows may be in flight.
  const timers: NodeJS.Timeout[] = [];
  cleanups.push(() => timers.forEach(clearTimeout));
  const { p } = await setup({ respond: (_req, res) => void timers.push(setTimeout(() => !res.destroyed && res.end(), 10_000)) },
    { maxInFlightPerCluster: 100, maxInFlightTotal: 4 });
  for (let i = 0; i < 3; i++) {
    const res = await fetchText(`${p.url}/r${i}`);
    expect([res.status, res.body]).toEqual([200, 'primary']);
  }
  expect(p.proxy.shadowWriter.inFlightTotal).toBe(4);
  expect(await dropped(p, 'total_inflight_cap')).toBe(5);
  expect(await dropped(p, 'inflight_cap')).toBe(0);
});

test('the total buffer cap drops the shadow whose body passes it, and the primary gets every byte', async () => {
  // Each shadow alone may hold 32 MiB; together they may hold 1 MiB. The mirrors never read.
  const { p, primary } = await setup({ neverReadBody: true }, { maxBufferedBodyBytes: 32 * MiB, maxTotalBufferedBodyBytes: MiB });
  const data = randomBytes(8 * MiB);
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let off = 0; off < data.length; off += 64 * 1024) yield data.subarray(off, off + 64 * 1024);
  }
  const res = await request(`${p.url}/upload`, {
    method: 'POST', headers: { 'content-length': String(data.length) }, body: Readable.from(chunks()), headersTimeout: 10_000, bodyTimeout: 10_000,
  });
  expect([res.statusCode, await res.body.text()]).toEqual([200, 'primary']);
  const [seen] = await primary.waitForRequests(1);
  expect(sha256(seen!.body)).toBe(sha256(data));
  await until('total_body_cap counted', async () => (await dropped(p, 'total_body_cap')) >= 1, 5000);
  expect(await dropped(p, 'body_cap')).toBe(0);
  expect(p.proxy.shadowWriter.budget.totalBytes).toBeLessThanOrEqual(MiB);
});
