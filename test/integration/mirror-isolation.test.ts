// A broken shadow never changes what the primary's client sees (DESIGN §3 step 4), proven with
// real sockets on 127.0.0.1: slow, refused, resetting, stalled and capped shadows all leave the
// primary's status, body and latency alone, and each failure is counted under its own reason.
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { ShadowLimits } from '../../src/shadow/writer';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { fetchText, startProxy, statValue, type TestProxy } from '../harness/proxy';
import { type Upstream, type UpstreamOptions, closedPort, sleep, startUpstream } from '../harness/upstream';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

// Everything a test starts is stopped here by its handle, newest first (proxy before upstreams).
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

interface Setup {
  p: TestProxy;
  primary: Upstream | null;
  mirror: Upstream | null;
}

/** Primary + mirror upstreams ('closed': a refused port) behind a proxy mirroring every request. */
async function setup(o: {
  primary?: UpstreamOptions | 'closed';
  mirror?: UpstreamOptions | 'closed';
  action?: Record<string, unknown>;
  prefix?: string;
  shadowLimits?: Partial<ShadowLimits>;
}): Promise<Setup> {
  const start = async (u: UpstreamOptions | 'closed', name: string): Promise<[Upstream | null, number]> => {
    if (u === 'closed') return [null, await closedPort()];
    const up = await startUpstream({ name, ...u });
    cleanups.push(() => up.close());
    return [up, up.port];
  };
  const [primary, primaryPort] = await start(o.primary ?? {}, 'primary');
  const [mirror, mirrorPort] = await start(o.mirror ?? {}, 'mirror');
  const action = { request_mirror_policies: [{ cluster: 'mirror' }], ...o.action };
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig([route(o.prefix ?? '/', 'primary', action)]))],
    clusters: [cluster('primary', [primaryPort]), cluster('mirror', [mirrorPort])],
  }), o.shadowLimits ? { shadowLimits: o.shadowLimits } : {});
  cleanups.push(() => p.stop());
  return { p, primary, mirror };
}

/** Polls a /stats value until `ok` holds or `timeoutMs` passes; returns the last value read. */
async function waitForStat(p: TestProxy, name: string, ok: (v: number) => boolean, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let v = await statValue(p.adminUrl, name);
  while (!ok(v) && Date.now() < deadline) {
    await sleep(50);
    v = await statValue(p.adminUrl, name);
  }
  return v;
}
const is = (n: number) => (v: number): boolean => v === n;

/**
 * An upstream that answers `ms` after the request ends, like the harness's delayMs, but whose
 * timer is cleared after the test so no answer outlives it (and Jest exits at once).
 */
const timers = new Set<NodeJS.Timeout>();
afterEach(() => timers.forEach((t) => clearTimeout(t)));
function answersAfter(ms: number): UpstreamOptions {
  return {
    respond: (_req, res) => {
      const t = setTimeout(() => {
        timers.delete(t);
        if (!res.destroyed) res.end('late');
      }, ms);
      timers.add(t);
    },
  };
}

/** POSTs `data` as a stream of 64 KiB chunks; `midway` runs (and is awaited) once `pauseAt` bytes are sent. */
async function upload(url: string, data: Buffer, pauseAt = -1, midway?: () => Promise<void>): Promise<{ status: number; body: string; ms: number }> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let off = 0; off < data.length; off += 64 * 1024) {
      if (off === pauseAt && midway) await midway();
      yield data.subarray(off, off + 64 * 1024);
    }
  }
  const started = performance.now();
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
    body: Readable.from(chunks()),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const body = await res.body.text();
  return { status: res.statusCode, body, ms: performance.now() - started };
}

/** Writes raw bytes to the listener and collects everything until the proxy closes (bounded). */
function rawExchange(port: number, text: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('close', done);
    socket.on('error', done);
    socket.write(text);
  });
}

// Proves: a 5 MB streamed upload reaches primary and mirror byte for byte, the client gets the
// primary's answer, and the shadow starts while the client is still sending (no store-and-forward).
test('large streamed POST: both upstreams get identical bytes, and the shadow starts before the upload ends', async () => {
  const { p, primary, mirror } = await setup({});
  const data = randomBytes(5 * MiB);
  let shadowHadHeadersMidUpload = false;
  // The client stops at 2.5 MB until the mirror has the request headers, then sends the rest.
  const res = await upload(`${p.url}/upload`, data, 40 * 64 * 1024, async () => {
    await mirror!.waitForRequests(1, 5000, true);
    shadowHadHeadersMidUpload = true;
  });
  expect(shadowHadHeadersMidUpload).toBe(true);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  const [seenByPrimary] = await primary!.waitForRequests(1);
  const [seenByMirror] = await mirror!.waitForRequests(1);
  expect(seenByPrimary!.body.length).toBe(data.length);
  expect(sha256(seenByPrimary!.body)).toBe(sha256(data));
  expect(sha256(seenByMirror!.body)).toBe(sha256(data));
  expect(await waitForStat(p, 'cluster.mirror.shadow.succeeded.2xx', is(1))).toBe(1);
});

// Proves: a shadow that takes 5 s to answer adds no latency: the client has its whole response
// while the shadow is still in flight.
test('slow shadow: the primary answers unchanged and long before the shadow does', async () => {
  const { p, mirror } = await setup({ mirror: answersAfter(5000) });
  const res = await fetchText(`${p.url}/slow`);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  expect(res.ms).toBeLessThan(2000);
  await mirror!.waitForRequests(1);
  expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')).toBe(1);
  // Still in flight: nothing the shadow does could have been waited for.
  expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.rq_active')).toBe(1);
  expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.succeeded.2xx')).toBe(0);
});

// Proves: a mirror whose port refuses connections is invisible to the client and counted.
test('refused shadow: the primary answers 200 and connect_failure is counted', async () => {
  const { p } = await setup({ mirror: 'closed' });
  const res = await fetchText(`${p.url}/refused`);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  expect(await waitForStat(p, 'cluster.mirror.shadow.failed.connect_failure', is(1))).toBe(1);
});

// Proves: a mirror that resets the connection mid-body does not disturb the primary's upload.
test('shadow reset mid-body: the primary gets the whole body and the reset is counted', async () => {
  const { p, primary } = await setup({ mirror: { resetAfterBodyBytes: 64 * 1024 } });
  const data = randomBytes(1 * MiB);
  const res = await upload(`${p.url}/reset`, data);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  const [seen] = await primary!.waitForRequests(1);
  expect(sha256(seen!.body)).toBe(sha256(data));
  expect(await waitForStat(p, 'cluster.mirror.shadow.failed.reset', is(1))).toBe(1);
});

// Proves: a mirror that never reads the body cannot stall the client's upload (no back-pressure
// from shadows); the shadow is dropped once its buffer passes the default 1 MiB cap.
test('shadow never reads the body: the upload completes promptly and body_cap is counted', async () => {
  const { p, primary } = await setup({ mirror: { neverReadBody: true } });
  const data = randomBytes(8 * MiB);
  const res = await upload(`${p.url}/stall`, data);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  // Generous bound: a shadow applying back-pressure would hold the upload forever (undici's 10 s timeouts).
  expect(res.ms).toBeLessThan(5000);
  const [seen] = await primary!.waitForRequests(1);
  expect(seen!.body.length).toBe(data.length);
  expect(sha256(seen!.body)).toBe(sha256(data));
  expect(await waitForStat(p, 'cluster.mirror.shadow.dropped.body_cap', is(1))).toBe(1);
});

// Proves: the per-cluster in-flight cap drops shadows (counted) and never the primary request.
test('in-flight cap: shadows past the cap are dropped, every primary still answers', async () => {
  const { p } = await setup({ mirror: answersAfter(10_000), shadowLimits: { maxInFlightPerCluster: 2 } });
  for (let i = 0; i < 5; i++) {
    const res = await fetchText(`${p.url}/capped/${i}`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('primary');
  }
  expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')).toBe(2);
  expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.dropped.inflight_cap')).toBe(3);
});

// Proves: a shadow gets the route's timeout, as in Envoy, and timing out is counted, not seen.
test('shadow timeout is the route timeout: the primary answers 200, the shadow times out', async () => {
  const { p } = await setup({ mirror: answersAfter(10_000), action: { timeout: '0.5s' } });
  const res = await fetchText(`${p.url}/timeout`);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  expect(await waitForStat(p, 'cluster.mirror.shadow.timed_out', is(1))).toBe(1);
  expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.succeeded.2xx')).toBe(0);
});

// Proves: when the client vanishes mid-upload the truncated shadow is aborted (never completed
// as if whole) and the proxy keeps serving.
test('client disconnects mid-upload: the shadow is aborted and the proxy keeps serving', async () => {
  const { p, mirror } = await setup({});
  const socket = net.connect(p.port, '127.0.0.1');
  socket.on('error', () => undefined);
  cleanups.push(async () => void socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(`POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: ${MiB}\r\n\r\n`);
  socket.write(randomBytes(64 * 1024));
  await mirror!.waitForRequests(1, 5000, true);
  socket.destroy();
  expect(await waitForStat(p, 'cluster.mirror.shadow.failed.client_aborted', is(1))).toBe(1);
  expect(mirror!.requests[0]!.complete).toBe(false);
  const after = await fetchText(`${p.url}/after`);
  expect(after.status).toBe(200);
  expect(after.body).toBe('primary');
});

// Proves: malformed HTTP gets a 400 on that connection only; the process keeps serving.
test('malformed HTTP: 400, counted as a protocol error, and the next request is served', async () => {
  const { p } = await setup({});
  const badHeader = await rawExchange(p.port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n');
  expect(badHeader.startsWith('HTTP/1.1 400')).toBe(true);
  const garbage = await rawExchange(p.port, 'HELLO\r\n\r\n');
  expect(garbage.startsWith('HTTP/1.1 400')).toBe(true);
  const res = await fetchText(`${p.url}/fine`);
  expect(res.status).toBe(200);
  expect(res.body).toBe('primary');
  expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_protocol_error')).toBeGreaterThanOrEqual(1);
});

// Sanity: failures of the primary itself are Envoy's local replies (the mirror is healthy).
describe('primary failures are answered as Envoy does', () => {
  // Proves: a refused primary is a 503 with Envoy's connection-failure text.
  test('primary connect refused: 503', async () => {
    const { p } = await setup({ primary: 'closed' });
    const res = await fetchText(`${p.url}/down`);
    expect(res.status).toBe(503);
    expect(res.body).toBe('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
  });

  // Proves: a primary slower than the route timeout is a 504.
  test('primary slower than the route timeout: 504', async () => {
    const { p } = await setup({ primary: answersAfter(2000), action: { timeout: '0.2s' } });
    const res = await fetchText(`${p.url}/late`);
    expect(res.status).toBe(504);
    expect(res.body).toBe('upstream request timeout');
  });

  // Proves: a path no route matches is a 404, and nothing is mirrored.
  test('no route: 404', async () => {
    const { p, primary, mirror } = await setup({ prefix: '/only' });
    const res = await fetchText(`${p.url}/elsewhere`);
    expect(res.status).toBe(404);
    expect(primary!.requests).toHaveLength(0);
    expect(mirror!.requests).toHaveLength(0);
  });
});
