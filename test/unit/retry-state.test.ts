import { PassThrough, type Readable } from 'node:stream';
import type { RetryPolicy } from '../../src/config/model';
import { StatsRegistry } from '../../src/stats/registry';
import { StatsScopes } from '../../src/stats/scopes';
import { JitteredBackOff } from '../../src/upstream/backoff';
import { BodyReplay } from '../../src/upstream/body-replay';
import type { UpstreamCluster } from '../../src/upstream/cluster-manager';
import type { Host } from '../../src/upstream/host';
import { pickHost } from '../../src/upstream/host-selection';
import { RingHashBalancer } from '../../src/upstream/load-balancer/ring-hash';
import { type ResponseView, parseConfigRetryOn, wouldRetryFailure, wouldRetryResponse } from '../../src/upstream/retry-conditions';
import { RetryState } from '../../src/upstream/retry-state';

// The pure parts of Envoy's retries: conditions, back-off, host selection, the retry state's
// counting and circuit breaker, and the body kept for replay (real streams).

const res = (status: number, headers: Record<string, string> = {}): ResponseView => ({ status, header: (n) => headers[n] });

describe('retry conditions (Envoy: wouldRetryFromHeaders / wouldRetryFromReset)', () => {
  test('responses', () => {
    const m = (s: string): number => parseConfigRetryOn(s.split(','));
    expect(wouldRetryResponse(m('5xx'), res(500), [], [])).toBe(true);
    expect(wouldRetryResponse(m('5xx'), res(499), [], [])).toBe(false);
    expect(wouldRetryResponse(m('gateway-error'), res(500), [], [])).toBe(false);
    expect([502, 503, 504].every((s) => wouldRetryResponse(m('gateway-error'), res(s), [], []))).toBe(true);
    expect(wouldRetryResponse(m('retriable-4xx'), res(409), [], [])).toBe(true);
    expect(wouldRetryResponse(m('retriable-4xx'), res(429), [], [])).toBe(false);
    expect(wouldRetryResponse(m('retriable-status-codes'), res(429), [429], [])).toBe(true);
    expect(wouldRetryResponse(m('5xx'), res(429), [429], [])).toBe(false);
    const named = [(lookup: (n: string) => string | undefined) => lookup('x-retry') !== undefined];
    expect(wouldRetryResponse(m('retriable-headers'), res(200, { 'x-retry': '1' }), [], named)).toBe(true);
    expect(wouldRetryResponse(m('5xx'), res(200, { 'x-retry': '1' }), [], named)).toBe(false);
    // gRPC: the status in the response headers, by condition.
    expect(wouldRetryResponse(m('unavailable'), res(200, { 'grpc-status': '14' }), [], [])).toBe(true);
    expect(wouldRetryResponse(m('unavailable'), res(200, { 'grpc-status': '13' }), [], [])).toBe(false);
    expect(wouldRetryResponse(m('internal,cancelled,deadline-exceeded,resource-exhausted'), res(200, { 'grpc-status': '8' }), [], [])).toBe(true);
    // x-envoy-ratelimited: only envoy-ratelimited retries it, whatever else matches.
    expect(wouldRetryResponse(m('5xx'), res(503, { 'x-envoy-ratelimited': 'true' }), [], [])).toBe(false);
    expect(wouldRetryResponse(m('envoy-ratelimited'), res(429, { 'x-envoy-ratelimited': 'true' }), [], [])).toBe(true);
  });

  test('failures before a response', () => {
    const m = (s: string): number => parseConfigRetryOn(s.split(','));
    const table: Array<[string, Parameters<typeof wouldRetryFailure>[1], boolean]> = [
      ['connect-failure', 'connect_failure', true],
      ['connect-failure', 'reset', false],
      ['connect-failure', 'per_try_timeout', false],
      ['reset', 'connect_failure', true],
      ['reset', 'protocol_error', true],
      ['reset', 'per_try_timeout', true],
      ['5xx', 'reset', true],
      ['gateway-error', 'per_try_timeout', true],
      ['refused-stream', 'refused_stream', true],
      ['refused-stream', 'reset', false],
      ['reset-before-request', 'connect_failure', true],
      ['reset-before-request', 'reset', false],
      ['retriable-4xx', 'connect_failure', false],
      ['5xx,reset,connect-failure', 'overflow', false],
    ];
    for (const [conditions, failure, expected] of table) expect([conditions, failure, wouldRetryFailure(m(conditions), failure)]).toEqual([conditions, failure, expected]);
  });
});

test("back-off: Envoy's fully jittered exponential, the bound doubling up to the maximum", () => {
  const top = new JitteredBackOff(25, 250, () => 0.9999);
  expect([1, 2, 3, 4, 5, 6].map(() => top.nextMs())).toEqual([24, 49, 99, 199, 249, 249]);
  const bottom = new JitteredBackOff(25, 250, () => 0);
  expect(bottom.nextMs()).toBe(0);
});

function host(port: number): Host {
  return { address: '10.0.0.1', port, addressPort: `10.0.0.1:${port}`, hostname: '', weight: 1, healthy: true, active: 0 } as unknown as Host;
}

test('host selection: a rejected pick is made again, a ring walked on, the last pick kept when all are rejected', () => {
  const hosts = [host(1), host(2), host(3)];
  const ring = new RingHashBalancer();
  const cluster = { pick: (key: bigint, attempt = 0) => ring.pick(hosts, key, attempt) } as unknown as UpstreamCluster;
  const first = pickHost(cluster, 42n, null, 0)!;
  // The same key lands on the same host every time, unless the predicate turns it down.
  expect(pickHost(cluster, 42n, null, 5)).toBe(first);
  const other = pickHost(cluster, 42n, (h) => h === first, 50)!;
  expect(other).not.toBe(first);
  expect(pickHost(cluster, 42n, () => true, 3)).not.toBeNull();
  // No more picks allowed: the rejected host stands.
  expect(pickHost(cluster, 42n, (h) => h === first, 0)).toBe(first);
});

function fakeCluster(maxRetries: number): UpstreamCluster {
  const stats = new StatsScopes(new StatsRegistry()).cluster('c');
  return { stats, retriesActive: 0, config: { circuitBreakers: { maxRetries } } } as unknown as UpstreamCluster;
}

const POLICY: RetryPolicy = {
  retryOn: ['5xx'], numRetries: 2, perTryTimeoutMs: 0, perTryIdleTimeoutMs: 0, retriableStatusCodes: [], retriableHeaders: [],
  retriableRequestHeaders: [], backOff: { baseIntervalMs: 1, maxIntervalMs: 2 }, previousHosts: true, hostSelectionRetryMaxAttempts: 1,
};

describe('retry state', () => {
  test('counts as Envoy does: retries, the success of the last one, the limit; holds the breaker from decision to answer', () => {
    const c = fakeCluster(3);
    const s = RetryState.create(POLICY, {}, () => undefined, c)!;
    expect(s.onResponse(res(503)).retry).toBe(true);
    expect(c.retriesActive).toBe(1);
    expect(s.onFailure('reset').retry).toBe(true);
    expect(c.retriesActive).toBe(1);
    expect(s.onResponse(res(503))).toEqual({ retry: false, reason: 'limit_exceeded' });
    expect(c.retriesActive).toBe(0);
    expect([c.stats.retry.retry.v, c.stats.retry.success.v, c.stats.retry.limitExceeded.v]).toEqual([2, 0, 1]);
    const ok = RetryState.create(POLICY, {}, () => undefined, c)!;
    ok.onResponse(res(500));
    expect(ok.onResponse(res(200))).toEqual({ retry: false, reason: 'no' });
    expect(c.stats.retry.success.v).toBe(1);
  });

  test('overflow when max_retries retries are under way; done() gives the slot back', () => {
    const c = fakeCluster(1);
    const a = RetryState.create(POLICY, {}, () => undefined, c)!;
    const b = RetryState.create(POLICY, {}, () => undefined, c)!;
    expect(a.onResponse(res(503)).retry).toBe(true);
    expect(c.stats.retry.open.v).toBe(1);
    expect(b.onResponse(res(503))).toEqual({ retry: false, reason: 'overflow' });
    a.done();
    expect(c.retriesActive).toBe(0);
    expect(c.stats.retry.open.v).toBe(0);
    expect(c.stats.retry.overflow.v).toBe(1);
  });

  test('headers: merged, consumed, x-envoy-max-retries only with some condition on; retriable_request_headers gate it all', () => {
    const c = fakeCluster(3);
    const headers: Record<string, string> = { 'x-envoy-retry-on': 'retriable-status-codes', 'x-envoy-retriable-status-codes': '418', 'x-envoy-max-retries': '0', 'x-envoy-retry-grpc-on': 'cancelled' };
    const s = RetryState.create(null, headers, () => undefined, c)!;
    expect(headers).toEqual({});
    expect(s.onResponse(res(418))).toEqual({ retry: false, reason: 'limit_exceeded' });
    expect(RetryState.create(null, { 'x-envoy-max-retries': '5' }, () => undefined, c)).toBeNull();
    const gated: RetryPolicy = { ...POLICY, retriableRequestHeaders: [{ name: ':method', invert: false, treatMissingAsEmpty: false, match: { kind: 'string', matcher: { kind: 'exact', value: 'GET', ignoreCase: false } } }] };
    expect(RetryState.create(gated, {}, (n) => (n === ':method' ? 'POST' : undefined), c)!.enabled).toBe(false);
    expect(RetryState.create(gated, {}, (n) => (n === ':method' ? 'GET' : undefined), c)!.enabled).toBe(true);
  });

  test('previous_hosts rejects the hosts already tried; abandon() ends retries and counts retry_or_shadow_abandoned', () => {
    const c = fakeCluster(3);
    const s = RetryState.create(POLICY, {}, () => undefined, c)!;
    const [h1, h2] = [host(1), host(2)];
    s.attempted(h1);
    expect(s.rejects!(h1)).toBe(true);
    expect(s.rejects!(h2)).toBe(false);
    s.abandon();
    expect(s.enabled).toBe(false);
    expect(s.onResponse(res(503))).toEqual({ retry: false, reason: 'no' });
    expect(c.stats.retry.abandoned.v).toBe(1);
  });
});

function collect(r: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    r.on('data', (c: Buffer) => parts.push(c));
    r.on('end', () => resolve(Buffer.concat(parts)));
    r.on('error', reject);
  });
}

describe('body replay', () => {
  test('a later attempt gets what was kept, then the rest as it comes; nothing is lost or doubled', async () => {
    const source = new PassThrough();
    const replay = new BodyReplay(source, 1024, () => { throw new Error('no overflow expected'); });
    const first = replay.stream();
    const firstGot: Buffer[] = [];
    first.on('data', (c: Buffer) => firstGot.push(c));
    source.write(Buffer.from('abc'));
    source.write(Buffer.from('def'));
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(firstGot).toString()).toBe('abcdef');
    const second = replay.stream();
    const done = collect(second);
    source.write(Buffer.from('ghi'));
    source.end();
    expect((await done).toString()).toBe('abcdefghi');
    expect(first.destroyed).toBe(true);
  });

  test('past the limit: onOverflow once, the attempt under way still gets every byte', async () => {
    const source = new PassThrough();
    let overflows = 0;
    const replay = new BodyReplay(source, 5, () => overflows++);
    const only = replay.stream();
    const done = collect(only);
    for (const part of ['abc', 'def', 'ghi']) source.write(Buffer.from(part));
    source.end();
    expect((await done).toString()).toBe('abcdefghi');
    expect(overflows).toBe(1);
  });
});
