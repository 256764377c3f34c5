// Envoy's retries on the primary, end to end: real upstreams that fail on script, an in-process
// sidecar on 127.0.0.1, real HTTP clients. Retry conditions, the body replayed byte for byte, the
// buffer limit, per-try timeouts, the max_retries circuit breaker, the x-envoy-retry-* headers of
// internal and external clients, never a retry once the response has started, and shadows that
// are sent once whatever the primary's retries do.
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type ScriptedUpstream, type Step, startScriptedUpstream, waitFor } from '../harness/scripted-upstream';
import { closedPort, sleep, startUpstream } from '../harness/upstream';

type Json = Record<string, unknown>;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  jest.restoreAllMocks();
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

/** Fast back-off, so that tests wait milliseconds between attempts. */
const FAST = { base_interval: '0.001s', max_interval: '0.005s' };

async function scripted(script: (n: number, headers: http.IncomingHttpHeaders) => Step): Promise<ScriptedUpstream> {
  const u = await startScriptedUpstream(script);
  cleanups.push(() => u.close());
  return u;
}

async function proxy(o: { routes: Json[]; clusters: Json[]; vhost?: Json; hcm?: Json }): Promise<TestProxy> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(o.routes, o.vhost ?? {}), { hcm: o.hcm })], clusters: o.clusters }));
  cleanups.push(() => p.stop());
  return p;
}

const stat = (p: TestProxy, name: string): Promise<number> => statValue(p.adminUrl, name);

/** A POST with `body`, sent in `chunks` pieces `gapMs` apart (chunked encoding). */
function post(url: string, body: Buffer, o: { chunks?: number; gapMs?: number; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: o.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const n = o.chunks ?? 1;
    const size = Math.ceil(body.length / n);
    let i = 0;
    const next = (): void => {
      if (i >= n) {
        req.end();
        return;
      }
      req.write(body.subarray(i * size, (i + 1) * size));
      i++;
      if (o.gapMs) setTimeout(next, o.gapMs);
      else next();
    };
    next();
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('retry conditions', () => {
  // Proves: 503, 503, then 200 with retry_on 5xx and num_retries 3: the client gets the 200, the
  // upstream saw three attempts numbered by x-envoy-attempt-count, and the cluster counts two
  // retries, one success, two back-offs and the two retried-away 503s (not as upstream_rq_503).
  test('a flaky upstream (503, 503, 200) is retried to success, with the stats', async () => {
    const up = await scripted((n) => ({ status: n <= 2 ? 503 : 200 }));
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: '5xx', num_retries: 3, retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port])],
      vhost: { include_request_attempt_count: true, include_attempt_count_in_response: true },
    });
    const res = await fetchText(`${p.url}/flaky`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('attempt 3: 200');
    expect(res.headers['x-envoy-attempt-count']).toBe('3');
    expect(up.seen.map((s) => s.headers['x-envoy-attempt-count'])).toEqual(['1', '2', '3']);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(2);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_success')).toBe(1);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_backoff_exponential')).toBe(2);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_limit_exceeded')).toBe(0);
    expect(await stat(p, 'cluster.primary.retry.upstream_rq_503')).toBe(2);
    expect(await stat(p, 'cluster.primary.upstream_rq_503')).toBe(0);
    expect(await stat(p, 'cluster.primary.upstream_rq_200')).toBe(1);
    expect(await stat(p, 'cluster.primary.upstream_rq_total')).toBe(3);
    expect(await stat(p, 'cluster.primary.upstream_rq_active')).toBe(0);
  });

  // Proves: when every attempt fails the client gets the last upstream response as it was (not a
  // local reply), after exactly num_retries retries, and the limit is counted once.
  test('retries used up: the last 503 goes to the client, upstream_rq_retry_limit_exceeded counts it', async () => {
    const up = await scripted((n) => ({ status: 503, body: `down ${n}` }));
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: 'gateway-error', num_retries: 2, retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port])],
    });
    const res = await fetchText(`${p.url}/`);
    expect(res.status).toBe(503);
    expect(res.body).toBe('down 3');
    expect(up.seen).toHaveLength(3);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(2);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_limit_exceeded')).toBe(1);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_success')).toBe(0);
    expect(await stat(p, 'cluster.primary.upstream_rq_503')).toBe(1);
  });

  // Proves: a status that no condition names is sent on at once; retriable-4xx retries a 409 and
  // retriable-status-codes the codes it lists; a virtual host's policy applies to its routes and a
  // route's own policy replaces it.
  test('which statuses retry: 5xx not 404; retriable-4xx (409); retriable_status_codes; the route replaces the vhost', async () => {
    const codes: Record<string, number> = { '/404': 404, '/409': 409, '/429': 429, '/route-own': 503 };
    const counts = new Map<string, number>();
    const up = await scripted((_n, h) => {
      const path = String(h['x-path']);
      const tries = counts.get(path) ?? 0;
      counts.set(path, tries + 1);
      return { status: tries === 0 ? codes[path]! : 200 };
    });
    const p = await proxy({
      routes: [
        route('/route-own', 'primary', { retry_policy: { retry_on: 'retriable-4xx', retry_back_off: FAST } }),
        route('/', 'primary'),
      ],
      clusters: [cluster('primary', [up.port])],
      vhost: { retry_policy: { retry_on: '5xx,retriable-4xx,retriable-status-codes', retriable_status_codes: [429], retry_back_off: FAST } },
    });
    const get = async (path: string): Promise<number> => (await fetchText(`${p.url}${path}`, { headers: { 'x-path': path } })).status;
    expect(await get('/404')).toBe(404);
    expect(await get('/409')).toBe(200);
    expect(await get('/429')).toBe(200);
    // The route's policy (retriable-4xx only) replaces the virtual host's: its 503 is not retried.
    expect(await get('/route-own')).toBe(503);
    expect(Object.fromEntries(counts)).toEqual({ '/404': 1, '/409': 2, '/429': 2, '/route-own': 1 });
  });

  // Proves: retriable-headers retries a response carrying a header the policy names; gRPC's
  // "unavailable" retries a grpc-status 14 in the response headers; envoy-ratelimited is needed
  // to retry a response marked x-envoy-ratelimited, even a 503.
  test('retriable-headers, a gRPC status in the headers, and x-envoy-ratelimited', async () => {
    const counts = new Map<string, number>();
    const up = await scripted((_n, h): Step => {
      const path = String(h['x-path']);
      const tries = counts.get(path) ?? 0;
      counts.set(path, tries + 1);
      if (tries > 0) return { status: 200 };
      if (path === '/hdr') return { status: 200, headers: { 'x-try-again': 'yes' } };
      if (path === '/grpc') return { status: 200, headers: { 'grpc-status': '14' } };
      return { status: 503, headers: { 'x-envoy-ratelimited': 'true' } };
    });
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: '5xx,retriable-headers,unavailable', retriable_headers: [{ name: 'x-try-again' }], retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port])],
    });
    const get = async (path: string): Promise<number> => (await fetchText(`${p.url}${path}`, { headers: { 'x-path': path } })).status;
    expect(await get('/hdr')).toBe(200);
    expect(await get('/grpc')).toBe(200);
    expect(await get('/limited')).toBe(503);
    expect(Object.fromEntries(counts)).toEqual({ '/hdr': 2, '/grpc': 2, '/limited': 1 });
  });

  // Proves: with a refused host and a working one, connect-failure sends each failed attempt to
  // the other host (previous_hosts); every client gets a 200 and each retry is a success.
  test('connect-failure: retried on the second host', async () => {
    const good = await startUpstream({ name: 'good' });
    cleanups.push(() => good.close());
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: {
        retry_on: 'connect-failure', retry_back_off: FAST,
        retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
        host_selection_retry_max_attempts: 3,
      } })],
      clusters: [cluster('primary', [await closedPort(), good.port])],
    });
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await fetchText(`${p.url}/${i}`));
    expect(results.map((r) => [r.status, r.body])).toEqual(Array.from({ length: 6 }, () => [200, 'good']));
    expect(good.requests).toHaveLength(6);
    const retries = await stat(p, 'cluster.primary.upstream_rq_retry');
    expect(retries).toBeGreaterThan(0);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_success')).toBe(retries);
    expect(await stat(p, 'cluster.primary.upstream_cx_connect_fail')).toBeGreaterThanOrEqual(retries);
  });

  // Proves: a connect failure under a policy whose conditions do not name it (retriable-4xx only;
  // 5xx would, as in Envoy) is answered with Envoy's 503 at once; one retried under `reset` that
  // fails again gets the same 503, and both carry x-envoy-attempt-count (1, then 2).
  test('local replies after attempts carry x-envoy-attempt-count; a failure no condition names is not retried', async () => {
    const closed = await closedPort();
    const p = await proxy({
      routes: [
        route('/4xx', 'primary', { retry_policy: { retry_on: 'retriable-4xx', retry_back_off: FAST } }),
        route('/', 'primary', { retry_policy: { retry_on: 'reset', num_retries: 1, retry_back_off: FAST } }),
      ],
      clusters: [cluster('primary', [closed])],
      vhost: { include_attempt_count_in_response: true },
    });
    const notRetried = await fetchText(`${p.url}/4xx`);
    expect(notRetried.status).toBe(503);
    expect(notRetried.headers['x-envoy-attempt-count']).toBe('1');
    const retried = await fetchText(`${p.url}/`);
    expect(retried.status).toBe(503);
    expect(retried.body).toBe('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
    expect(retried.headers['x-envoy-attempt-count']).toBe('2');
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(1);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_limit_exceeded')).toBe(1);
  });
});

describe('the request body', () => {
  // Proves: a 300 KiB POST, streamed in 30 chunks, reaches the retry byte for byte: once after
  // the upstream answered 503 having read it all, once after it reset the connection a third
  // of the way in (the retry replays what was kept and follows the rest as it comes).
  test('replayed identically to the retry, after a 503 and after a reset mid-upload', async () => {
    const body = randomBytes(300 * 1024);
    const up = await scripted((n) => (n === 1 ? { status: 503 } : n === 2 ? { resetAfterBodyBytes: 100 * 1024 } : { status: 200 }));
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: '5xx', num_retries: 3, retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port])],
    });
    const res = await post(`${p.url}/upload`, body, { chunks: 30, gapMs: 2 });
    expect(res.status).toBe(200);
    expect(up.seen).toHaveLength(3);
    expect(up.seen[0]!.sha256).toBe(sha(body));
    expect(up.seen[2]!.bytes).toBe(body.length);
    expect(up.seen[2]!.sha256).toBe(sha(body));
    expect(up.seen.every((s) => s.method === 'POST')).toBe(true);
  });

  // Proves: the same replay over an HTTP/2 (h2c) cluster: the retry's stream carries the body
  // byte for byte, on the same connection.
  test('replayed identically over HTTP/2 upstream streams', async () => {
    const body = randomBytes(200 * 1024);
    const got: Array<{ sha: string; session: unknown }> = [];
    const server = http2.createServer();
    server.on('stream', (stream) => {
      const hash = createHash('sha256');
      stream.on('data', (c: Buffer) => hash.update(c));
      stream.on('end', () => {
        got.push({ sha: hash.digest('hex'), session: stream.session });
        stream.respond({ ':status': got.length === 1 ? 503 : 200 });
        stream.end(`stream ${got.length}`);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const h2 = { typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http2_protocol_options: {} } } } };
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: '5xx', retry_back_off: FAST } })],
      clusters: [cluster('primary', [(server.address() as AddressInfo).port], h2)],
    });
    const res = await post(`${p.url}/h2`, body, { chunks: 10, gapMs: 2 });
    expect([res.status, res.body]).toEqual([200, 'stream 2']);
    expect(got.map((g) => g.sha)).toEqual([sha(body), sha(body)]);
    expect(got[1]!.session).toBe(got[0]!.session);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_success')).toBe(1);
  });

  // Proves: a body over per_request_buffer_limit_bytes (route's) is not kept: the 503 goes to
  // the client unretried, and retry_or_shadow_abandoned counts it; the same POST under the limit
  // is retried.
  test('over the buffer limit: no retry, counted as retry_or_shadow_abandoned', async () => {
    const up = await scripted((n) => ({ status: n <= 2 ? 503 : 200 }));
    const policy = { retry_on: '5xx', retry_back_off: FAST };
    const p = await proxy({
      routes: [
        { ...route('/small-limit', 'primary', { retry_policy: policy }), per_request_buffer_limit_bytes: 16 * 1024 },
        route('/', 'primary', { retry_policy: policy }),
      ],
      clusters: [cluster('primary', [up.port])],
    });
    const over = await post(`${p.url}/small-limit`, randomBytes(64 * 1024), { chunks: 8 });
    expect(over.status).toBe(503);
    expect(up.seen).toHaveLength(1);
    expect(await stat(p, 'cluster.primary.retry_or_shadow_abandoned')).toBe(1);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(0);
    // Under the listener's default limit (1 MiB): retried.
    const under = await post(`${p.url}/`, randomBytes(64 * 1024), { chunks: 8 });
    expect(under.status).toBe(200);
    expect(up.seen).toHaveLength(3);
  });

  // Proves: when the body passes the limit while a retry waits for its back-off, there is no
  // attempt to carry it: Envoy's 507 "exceeded request buffer limit while retrying upstream".
  // (The back-off is made long by fixing the random draw.)
  test('passing the limit during the back-off: 507', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.99);
    const p = await proxy({
      routes: [{ ...route('/', 'primary', { retry_policy: { retry_on: 'connect-failure', retry_back_off: { base_interval: '3s' } } }), per_request_buffer_limit_bytes: 32 * 1024 }],
      clusters: [cluster('primary', [await closedPort()])],
    });
    // The first 4 KiB go at once; the rest once the refused attempt's retry is waiting.
    const body = randomBytes(64 * 1024);
    let req: http.ClientRequest | null = null;
    const res = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req = http.request(`${p.url}/`, { method: 'POST', agent: false }, (r) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 4096));
    });
    for (let i = 0; i < 200 && (await stat(p, 'cluster.primary.upstream_rq_retry')) === 0; i++) await sleep(10);
    req!.end(body.subarray(4096));
    expect(await res).toEqual({ status: 507, body: 'exceeded request buffer limit while retrying upstream' });
    expect(await stat(p, 'cluster.primary.retry_or_shadow_abandoned')).toBe(1);
  });

  // Proves: a kept body never holds the client's upload: with every attempt refused, a keep-alive
  // client's 900 KiB POSTs each get Envoy's 503, and the next request goes out on the same
  // connection (a body left attached to a dead attempt used to stall the upload, and the reply
  // then had to close the connection).
  test('after the last attempt fails, the rest of the upload drains and the connection is kept', async () => {
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: 'connect-failure', num_retries: 1, retry_back_off: FAST } })],
      clusters: [cluster('primary', [await closedPort()])],
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => agent.destroy());
    const send = (): Promise<{ status: number; reused: boolean }> => new Promise((resolve, reject) => {
      const req = http.request(`${p.url}/`, { method: 'POST', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      });
      req.on('error', reject);
      req.end(randomBytes(900 * 1024));
    });
    const first = await send();
    const second = await send();
    expect(first.status).toBe(503);
    expect(second).toEqual({ status: 503, reused: true });
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(2);
  });
});

describe('timeouts', () => {
  // Proves: per_try_timeout cuts an attempt that does not answer in time and, under 5xx, a retry
  // follows (marked x-envoy-is-timeout-retry); counted as upstream_rq_per_try_timeout, not as
  // the route's upstream_rq_timeout. Without a condition that retries it, the client gets 504.
  test('per_try_timeout: retried under 5xx, a 504 otherwise', async () => {
    const up = await scripted((n) => (n === 1 || n === 3 ? { status: 200, delayMs: 3000 } : { status: 200 }));
    const p = await proxy({
      routes: [
        route('/retried', 'primary', { timeout: '10s', retry_policy: { retry_on: '5xx', per_try_timeout: '0.2s', retry_back_off: FAST } }),
        route('/', 'primary', { timeout: '10s', retry_policy: { retry_on: 'retriable-4xx', per_try_timeout: '0.2s' } }),
      ],
      clusters: [cluster('primary', [up.port])],
      vhost: { include_is_timeout_retry_header: true },
    });
    const retried = await fetchText(`${p.url}/retried`);
    expect(retried.status).toBe(200);
    expect(retried.body).toBe('attempt 2: 200');
    expect(up.seen[1]!.headers['x-envoy-is-timeout-retry']).toBe('true');
    expect(up.seen[0]!.headers['x-envoy-expected-rq-timeout-ms']).toBe('200');
    const cut = await fetchText(`${p.url}/cut`);
    expect(cut.status).toBe(504);
    expect(cut.body).toBe('upstream request timeout');
    expect(cut.ms).toBeLessThan(2500);
    expect(await stat(p, 'cluster.primary.upstream_rq_per_try_timeout')).toBe(2);
    expect(await stat(p, 'cluster.primary.upstream_rq_timeout')).toBe(0);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(1);
  });

  // Proves: per_try_idle_timeout cuts an attempt that goes quiet: before its response, a retry
  // follows (under reset); once the response is streaming, the client's stream is reset (never a
  // retry then). Counted as upstream_rq_per_try_idle_timeout.
  test('per_try_idle_timeout: retried before the response, a reset after it started', async () => {
    const up = await scripted((n, h) => (h['x-path'] === '/quiet-body' ? { stallMidResponse: true } : n === 1 ? { status: 200, delayMs: 3000 } : { status: 200 }));
    const p = await proxy({
      routes: [route('/', 'primary', { timeout: '10s', retry_policy: { retry_on: 'reset', per_try_idle_timeout: '0.3s', retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port])],
    });
    const retried = await fetchText(`${p.url}/quiet-head`, { headers: { 'x-path': '/quiet-head' } });
    expect(retried.status).toBe(200);
    expect(retried.body).toBe('attempt 2: 200');
    const outcome = await new Promise<string>((resolve) => {
      http.get(`${p.url}/quiet-body`, { agent: false, headers: { 'x-path': '/quiet-body' } }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => resolve(`ended ${res.statusCode}`));
        res.on('error', () => resolve(`reset after ${res.statusCode}`));
      }).on('error', (e) => resolve(`error ${e.message}`));
    });
    expect(outcome).toBe('reset after 200');
    expect(up.seen).toHaveLength(3);
    expect(await stat(p, 'cluster.primary.upstream_rq_per_try_idle_timeout')).toBe(2);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(1);
  });

  // Proves: the route timeout covers every attempt with its back-offs: a 503 upstream retried
  // with 2 s back-offs meets the 0.5 s route timeout (504) long before num_retries is used up.
  test('the route timeout includes all retries', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.99);
    const up = await scripted(() => ({ status: 503 }));
    const p = await proxy({
      routes: [route('/', 'primary', { timeout: '0.5s', retry_policy: { retry_on: '5xx', num_retries: 10, retry_back_off: { base_interval: '2s' } } })],
      clusters: [cluster('primary', [up.port])],
    });
    const res = await fetchText(`${p.url}/`);
    expect(res.status).toBe(504);
    expect(up.seen).toHaveLength(1);
    expect(await stat(p, 'cluster.primary.upstream_rq_timeout')).toBe(1);
    expect(await stat(p, 'cluster.primary.circuit_breakers.default.rq_retry_open')).toBe(0);
  });
});

describe('limits and trust', () => {
  // Proves: with circuit_breakers max_retries 1, a second request that wants a retry while the
  // first one's retry is still under way is not retried (its 503 goes to the client) and is
  // counted as upstream_rq_retry_overflow; the first request's retry still succeeds.
  test('the max_retries circuit breaker: overflow', async () => {
    // First attempts fail at once; retries answer after 5 s, holding the breaker's one slot.
    const up = await scripted((_n, h) => (h['x-envoy-attempt-count'] === '1' ? { status: 503 } : { status: 200, delayMs: 5000 }));
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: '5xx', retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port], { circuit_breakers: { thresholds: [{ max_retries: 1 }] } })],
      vhost: { include_request_attempt_count: true },
    });
    const first = fetchText(`${p.url}/a`);
    await waitFor(() => up.seen.length === 2);
    expect(await stat(p, 'cluster.primary.circuit_breakers.default.rq_retry_open')).toBe(1);
    const second = await fetchText(`${p.url}/b`);
    expect(second.status).toBe(503);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry_overflow')).toBe(1);
    expect((await first).status).toBe(200);
    expect(up.seen).toHaveLength(3);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(1);
    expect(await stat(p, 'cluster.primary.circuit_breakers.default.rq_retry_open')).toBe(0);
  });

  // Proves: x-envoy-retry-on and x-envoy-max-retries from an internal client make a route with no
  // retry policy retry (3 attempts), and never reach the upstream; from an external client they
  // are stripped and nothing is retried (1 attempt).
  test('x-envoy-retry-on / x-envoy-max-retries: honoured from an internal client, ignored from an external one', async () => {
    const up = await scripted(() => ({ status: 503 }));
    const clusters = [cluster('primary', [up.port])];
    const internal = await proxy({ routes: [route('/', 'primary')], clusters,
      hcm: { use_remote_address: true, internal_address_config: { cidr_ranges: [{ address_prefix: '127.0.0.0', prefix_len: 8 }] } } });
    const external = await proxy({ routes: [route('/', 'primary')], clusters, hcm: { use_remote_address: true } });
    const hints = { 'x-envoy-retry-on': '5xx', 'x-envoy-max-retries': '2' };
    expect((await fetchText(`${internal.url}/`, { headers: hints })).status).toBe(503);
    expect(up.seen).toHaveLength(3);
    for (const s of up.seen) {
      expect(s.headers['x-envoy-retry-on']).toBeUndefined();
      expect(s.headers['x-envoy-max-retries']).toBeUndefined();
    }
    expect((await fetchText(`${external.url}/`, { headers: hints })).status).toBe(503);
    expect(up.seen).toHaveLength(4);
    expect(await stat(internal, 'cluster.primary.upstream_rq_retry')).toBe(2);
    expect(await stat(external, 'cluster.primary.upstream_rq_retry')).toBe(0);
  });

  // Proves: an internal client's x-envoy-max-retries overrides the route's num_retries, and its
  // x-envoy-upstream-rq-per-try-timeout-ms sets a per-try timeout the route does not have.
  test('x-envoy-max-retries overrides num_retries; x-envoy-upstream-rq-per-try-timeout-ms sets a per-try timeout', async () => {
    const up = await scripted((n) => (n <= 4 ? { status: 503 } : n === 5 ? { status: 200, delayMs: 3000 } : { status: 200 }));
    const p = await proxy({
      routes: [route('/', 'primary', { timeout: '10s', retry_policy: { retry_on: '5xx', num_retries: 1, retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port])],
      hcm: { use_remote_address: true, internal_address_config: { cidr_ranges: [{ address_prefix: '127.0.0.0', prefix_len: 8 }] } },
    });
    const four = await fetchText(`${p.url}/`, { headers: { 'x-envoy-max-retries': '3' } });
    expect(four.status).toBe(503);
    expect(up.seen).toHaveLength(4);
    const timed = await fetchText(`${p.url}/`, { headers: { 'x-envoy-upstream-rq-per-try-timeout-ms': '200' } });
    expect(timed.status).toBe(200);
    expect(timed.body).toBe('attempt 6: 200');
    expect(up.seen[4]!.headers['x-envoy-upstream-rq-per-try-timeout-ms']).toBeUndefined();
    expect(await stat(p, 'cluster.primary.upstream_rq_per_try_timeout')).toBe(1);
  });
});

describe('what is never retried', () => {
  // Proves: once the response headers went to the client nothing is retried: an upstream that
  // sends 200 and part of its body, then resets, leaves the client with a reset stream, after
  // one attempt, though reset and 5xx are retry conditions.
  test('no retry after the response started streaming', async () => {
    const up = await scripted(() => ({ resetMidResponse: true }));
    const p = await proxy({
      routes: [route('/', 'primary', { retry_policy: { retry_on: 'reset,5xx', num_retries: 3, retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port])],
    });
    const outcome = await new Promise<string>((resolve) => {
      http.get(`${p.url}/`, { agent: false }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => resolve(`ended ${res.statusCode}`));
        res.on('error', () => resolve(`reset after ${res.statusCode}`));
        res.on('aborted', () => resolve(`reset after ${res.statusCode}`));
      }).on('error', (e) => resolve(`error ${e.message}`));
    });
    expect(outcome).toBe('reset after 200');
    await sleep(100);
    expect(up.seen).toHaveLength(1);
    expect(await stat(p, 'cluster.primary.upstream_rq_retry')).toBe(0);
  });

  // Proves: a mirrored POST whose primary is retried twice reaches the shadow once, with the
  // whole body: the primary's retry policy is the primary's alone.
  test('shadows are sent once, whatever the primary retries', async () => {
    const body = randomBytes(50 * 1024);
    const up = await scripted((n) => ({ status: n <= 2 ? 503 : 200 }));
    const mirror = await scripted(() => ({ status: 200 }));
    const p = await proxy({
      routes: [route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }], retry_policy: { retry_on: '5xx', num_retries: 3, retry_back_off: FAST } })],
      clusters: [cluster('primary', [up.port]), cluster('mirror', [mirror.port])],
    });
    const res = await post(`${p.url}/m`, body, { chunks: 5, gapMs: 2 });
    expect(res.status).toBe(200);
    expect(up.seen).toHaveLength(3);
    await waitFor(() => mirror.seen.length === 1 && mirror.seen[0]!.sha256 !== '');
    await sleep(200);
    expect(mirror.seen).toHaveLength(1);
    expect(mirror.seen[0]!.sha256).toBe(sha(body));
    expect(up.seen[2]!.sha256).toBe(sha(body));
  });
});
