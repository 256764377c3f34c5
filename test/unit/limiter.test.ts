import { Writable } from 'node:stream';
import pino from 'pino';
import { silentLogger } from '../../src/log/logger';
import { createLimiter } from '../../src/shadow/limit';
import type { LimitConfig, LimitDecision, MirrorLimiter, RedisTarget } from '../../src/shadow/limit/limiter';
import { LocalCounterRegistry, LocalLimiter } from '../../src/shadow/limit/local';
import { RedisClientPool, RedisLimiter, mirrorLimitKey } from '../../src/shadow/limit/redis';
import { freePort, redisCommand, startRedis, startRedisCluster, type TestRedis, type TestRedisCluster } from '../harness/redis';

const logger = silentLogger();
/** A fixed instant in the middle of a 60 s window, so no test straddles a window boundary. */
const T0 = Date.UTC(2030, 0, 1, 0, 0, 30);
const fixed = (): number => T0;

function tally(decisions: readonly LimitDecision[]): Record<LimitDecision, number> {
  const t: Record<LimitDecision, number> = { allowed: 0, limited: 0, error: 0 };
  for (const d of decisions) t[d] += 1;
  return t;
}

async function takeN(limiter: MirrorLimiter, n: number): Promise<LimitDecision[]> {
  const out: LimitDecision[] = [];
  for (let i = 0; i < n; i += 1) out.push(await limiter.acquire());
  return out;
}

let keySeq = 0;
const uniqueKey = (label: string): string => `${label}-${process.pid}-${(keySeq += 1)}`;

function single(port: number, timeoutMs = 300, database = 0): RedisTarget {
  return { kind: 'single', server: { host: '127.0.0.1', port }, password: null, username: null, tls: null, database, timeoutMs };
}

/** Polls until the limiter answers something other than 'error'; bounded. */
async function waitForRecovery(limiter: MirrorLimiter, withinMs: number): Promise<LimitDecision> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const d = await limiter.acquire();
    if (d !== 'error') return d;
    if (Date.now() > deadline) throw new Error(`limiter still answering 'error' after ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('LocalLimiter', () => {
  test('count 2 per 60 s: exactly 2 of 10 allowed, synchronously', () => {
    const limiter = new LocalLimiter({ count: 2, windowMs: 60_000 }, { now: fixed });
    const decisions: LimitDecision[] = [];
    for (let i = 0; i < 10; i += 1) {
      const d = limiter.acquire();
      expect(typeof d).toBe('string'); // not a promise
      decisions.push(d);
    }
    expect(decisions.slice(0, 2)).toEqual(['allowed', 'allowed']);
    expect(tally(decisions)).toEqual({ allowed: 2, limited: 8, error: 0 });
  });

  test('windows are aligned to the wall clock and roll over', () => {
    let now = 120_000; // start of window 2 of 60 s
    const limiter = new LocalLimiter({ count: 2, windowMs: 60_000 }, { now: () => now });
    expect([limiter.acquire(), limiter.acquire(), limiter.acquire()]).toEqual(['allowed', 'allowed', 'limited']);
    now = 179_999; // last ms of the same window
    expect(limiter.acquire()).toBe('limited');
    now = 180_000; // next window: a fresh budget
    expect([limiter.acquire(), limiter.acquire(), limiter.acquire()]).toEqual(['allowed', 'allowed', 'limited']);
    now = 10 * 60_000 + 5; // skipping windows is fine too
    expect(limiter.acquire()).toBe('allowed');
  });

  test('count 0 allows nothing', () => {
    const limiter = new LocalLimiter({ count: 0, windowMs: 1000 }, { now: fixed });
    expect(tally([limiter.acquire(), limiter.acquire()])).toEqual({ allowed: 0, limited: 2, error: 0 });
  });

  test('limiters with the same key share a counter in the process until the last closes', async () => {
    const registry = new LocalCounterRegistry();
    const a = registry.create({ count: 3, windowMs: 60_000, key: 'k' }, fixed);
    const b = registry.create({ count: 3, windowMs: 60_000, key: 'k' }, fixed);
    const other = registry.create({ count: 3, windowMs: 60_000, key: 'other' }, fixed);
    expect(tally([a.acquire(), b.acquire(), a.acquire(), b.acquire()])).toEqual({ allowed: 3, limited: 1, error: 0 });
    expect(other.acquire()).toBe('allowed');
    await a.close();
    await a.close(); // idempotent
    expect(b.acquire()).toBe('limited'); // b still holds the shared count
    await b.close();
    await other.close();
    expect(registry.size).toBe(0);
  });

  test('createLimiter picks the local store', async () => {
    const config: LimitConfig = { count: 1, windowMs: 60_000, key: uniqueKey('create-local'), store: { kind: 'local' }, onError: 'skip' };
    const limiter = createLimiter(config, logger);
    expect(limiter).toBeInstanceOf(LocalLimiter);
    await limiter.close();
  });
});

describe('RedisLimiter (real redis-server)', () => {
  let redis: TestRedis;
  const open: MirrorLimiter[] = [];
  const track = <T extends MirrorLimiter>(l: T): T => {
    open.push(l);
    return l;
  };

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((l) => l.close()));
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test('count 2 per 60 s: exactly 2 of 10 allowed; counter key has a TTL of two windows', async () => {
    const key = uniqueKey('two-of-ten');
    const target = single(redis.port);
    const limiter = track(new RedisLimiter({ count: 2, windowMs: 60_000, key }, target, logger, { now: fixed, pool: new RedisClientPool() }));
    const decisions = await takeN(limiter, 10);
    expect(decisions.slice(0, 2)).toEqual(['allowed', 'allowed']);
    expect(tally(decisions)).toEqual({ allowed: 2, limited: 8, error: 0 });

    const redisKey = mirrorLimitKey(target, key, Math.floor(T0 / 60_000));
    expect(redisKey).toBe(`sidemirror:mirror-limit:{${key}}:${Math.floor(T0 / 60_000)}`);
    expect(await redisCommand(redis.port, ['GET', redisKey])).toBe('10');
    const pttl = Number(await redisCommand(redis.port, ['PTTL', redisKey]));
    expect(pttl).toBeGreaterThan(110_000);
    expect(pttl).toBeLessThanOrEqual(120_000);
  });

  test('a new wall-clock window is a fresh budget', async () => {
    let now = 60_000 * 1000;
    const limiter = track(new RedisLimiter({ count: 1, windowMs: 60_000, key: uniqueKey('rollover') }, single(redis.port), logger, { now: () => now, pool: new RedisClientPool() }));
    expect(await takeN(limiter, 2)).toEqual(['allowed', 'limited']);
    now += 60_000;
    expect(await takeN(limiter, 2)).toEqual(['allowed', 'limited']);
  });

  test('two sidecars (separate clients) share one budget: 3 + 3 takes with count 4 → 4 allowed', async () => {
    const key = uniqueKey('shared');
    const config = { count: 4, windowMs: 60_000, key };
    const poolA = new RedisClientPool();
    const poolB = new RedisClientPool();
    const a = track(new RedisLimiter(config, single(redis.port), logger, { now: fixed, pool: poolA }));
    const b = track(new RedisLimiter(config, single(redis.port), logger, { now: fixed, pool: poolB }));
    expect(poolA.size).toBe(1);
    expect(poolB.size).toBe(1);
    const decisions = [...(await takeN(a, 3)), ...(await takeN(b, 3))];
    expect(tally(decisions)).toEqual({ allowed: 4, limited: 2, error: 0 });
    // Both clients are really connected: Redis sees two limiter connections.
    const clients = (await redisCommand(redis.port, ['CLIENT', 'LIST'])) ?? '';
    expect(clients.split('\n').filter((l) => l.includes('name=sidemirror-mirror-limit')).length).toBeGreaterThanOrEqual(2);
  });

  test('50 concurrent takes with count 10 → exactly 10 allowed', async () => {
    const limiter = track(new RedisLimiter({ count: 10, windowMs: 60_000, key: uniqueKey('concurrent') }, single(redis.port), logger, { now: fixed, pool: new RedisClientPool() }));
    const decisions = await Promise.all(Array.from({ length: 50 }, () => limiter.acquire()));
    expect(tally(decisions)).toEqual({ allowed: 10, limited: 40, error: 0 });
  });

  test('policies pointing at one Redis share one client; it closes with the last', async () => {
    const pool = new RedisClientPool();
    const a = new RedisLimiter({ count: 1, windowMs: 60_000, key: uniqueKey('pool-a') }, single(redis.port), logger, { pool });
    const b = new RedisLimiter({ count: 1, windowMs: 1000, key: uniqueKey('pool-b') }, single(redis.port), logger, { pool });
    const c = new RedisLimiter({ count: 1, windowMs: 1000, key: uniqueKey('pool-c') }, single(redis.port, 300, 1), logger, { pool });
    expect(pool.size).toBe(2);
    expect(await a.acquire()).toBe('allowed');
    expect(await b.acquire()).toBe('allowed');
    expect(await c.acquire()).toBe('allowed');
    await a.close();
    expect(pool.size).toBe(2);
    expect(await b.acquire()).not.toBe('error');
    await b.close();
    await c.close();
    expect(pool.size).toBe(0);
    expect(await a.acquire()).toBe('error'); // closed
  });

  test('createLimiter picks the redis store', async () => {
    const config: LimitConfig = { count: 1, windowMs: 60_000, key: uniqueKey('create-redis'), store: { kind: 'redis', target: single(redis.port) }, onError: 'skip' };
    const limiter = track(createLimiter(config, logger));
    expect(limiter).toBeInstanceOf(RedisLimiter);
    expect(await limiter.acquire()).toBe('allowed');
  });

  test('a Redis that never answers → error within timeoutMs', async () => {
    const limiter = track(new RedisLimiter({ count: 5, windowMs: 60_000, key: uniqueKey('hung') }, single(redis.port, 300), logger, { now: fixed, pool: new RedisClientPool() }));
    expect(await limiter.acquire()).toBe('allowed'); // connected
    redis.pause();
    try {
      const started = Date.now();
      expect(await limiter.acquire()).toBe('error');
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(300 + 500);
    } finally {
      redis.resume();
    }
    expect(await waitForRecovery(limiter, 5000)).not.toBe('error');
  });
});

describe('RedisLimiter when Redis goes away', () => {
  test('Redis stopped → error within timeoutMs; recovers when it restarts on the same port', async () => {
    let redis = await startRedis();
    const port = redis.port;
    const timeoutMs = 300;
    const limiter = new RedisLimiter({ count: 100, windowMs: 60_000, key: uniqueKey('restart') }, single(port, timeoutMs), logger, { now: fixed, pool: new RedisClientPool() });
    try {
      expect(await limiter.acquire()).toBe('allowed');
      await redis.stop();
      for (let i = 0; i < 5; i += 1) {
        const started = Date.now();
        expect(await limiter.acquire()).toBe('error');
        expect(Date.now() - started).toBeLessThan(timeoutMs + 500);
      }
      redis = await startRedis({ port });
      // The reconnect backoff is capped at 1 s, so it should be back well within 5 s.
      expect(await waitForRecovery(limiter, 5000)).toBe('allowed');
    } finally {
      await limiter.close();
      await redis.stop();
    }
  });

  test('unreachable from the start → error quickly, never rejects', async () => {
    const port = await freePort(); // nothing listens here
    const limiter = new RedisLimiter({ count: 1, windowMs: 60_000, key: uniqueKey('nobody') }, single(port, 1000), logger, { pool: new RedisClientPool() });
    try {
      const started = Date.now();
      const decisions = await Promise.all([limiter.acquire(), limiter.acquire(), limiter.acquire()]);
      expect(decisions).toEqual(['error', 'error', 'error']);
      expect(Date.now() - started).toBeLessThan(500); // connection refused, not the 1 s timeout
      const again = Date.now();
      expect(await limiter.acquire()).toBe('error');
      expect(Date.now() - again).toBeLessThan(200); // fails fast while reconnecting
    } finally {
      await limiter.close();
    }
  });

  test('connection errors are logged at most once per 10 s, without the password', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const captured = pino({ level: 'warn' }, sink);
    const port = await freePort();
    const target: RedisTarget = { kind: 'single', server: { host: '127.0.0.1', port }, password: 's3cret', username: null, tls: null, database: 0, timeoutMs: 200 };
    const limiter = new RedisLimiter({ count: 1, windowMs: 60_000, key: uniqueKey('noisy') }, target, captured, { pool: new RedisClientPool() });
    try {
      // Reconnect attempts every 50..400 ms for ~1.5 s: several errors, one line.
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        expect(await limiter.acquire()).toBe('error');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await limiter.close();
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`127.0.0.1:${port}`);
    expect(lines[0]).not.toContain('s3cret');
  });
});

describe('RedisLimiter over Redis Cluster (3 masters)', () => {
  let cluster: TestRedisCluster;
  let startupMs = 0;

  beforeAll(async () => {
    const started = Date.now();
    cluster = await startRedisCluster();
    startupMs = Date.now() - started;
  }, 45_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  function clusterTarget(name: string): RedisTarget {
    return { kind: 'cluster', nodes: cluster.ports.map((port) => ({ host: '127.0.0.1', port })), name, password: null, username: null, tls: null, timeoutMs: 1000 };
  }

  test('two sidecars share one budget through the cluster: 3 + 3 takes with count 4 → 4 allowed', async () => {
    expect(startupMs).toBeLessThan(45_000);
    const key = uniqueKey('cluster-shared');
    const config = { count: 4, windowMs: 60_000, key };
    const a = new RedisLimiter(config, clusterTarget('mesh'), logger, { now: fixed, pool: new RedisClientPool() });
    const b = new RedisLimiter(config, clusterTarget('mesh'), logger, { now: fixed, pool: new RedisClientPool() });
    const other = new RedisLimiter(config, clusterTarget('elsewhere'), logger, { now: fixed, pool: new RedisClientPool() });
    try {
      const decisions = [...(await takeN(a, 3)), ...(await takeN(b, 3))];
      expect(tally(decisions)).toEqual({ allowed: 4, limited: 2, error: 0 });
      // Another name is another budget.
      expect(await other.acquire()).toBe('allowed');

      // Exactly one node holds the counter; the others redirect.
      const redisKey = mirrorLimitKey(clusterTarget('mesh'), key, Math.floor(T0 / 60_000));
      expect(redisKey).toBe(`sidemirror:mesh:mirror-limit:{${key}}:${Math.floor(T0 / 60_000)}`);
      const replies = await Promise.all(cluster.ports.map((port) => redisCommand(port, ['GET', redisKey])));
      expect(replies.filter((r) => r === '6')).toHaveLength(1);
      expect(replies.filter((r) => r?.startsWith('-MOVED'))).toHaveLength(2);

      const concurrent = new RedisLimiter({ count: 10, windowMs: 60_000, key: uniqueKey('cluster-concurrent') }, clusterTarget('mesh'), logger, { now: fixed, pool: new RedisClientPool() });
      try {
        expect(tally(await Promise.all(Array.from({ length: 50 }, () => concurrent.acquire())))).toEqual({ allowed: 10, limited: 40, error: 0 });
      } finally {
        await concurrent.close();
      }
    } finally {
      await Promise.all([a.close(), b.close(), other.close()]);
    }
  });
});
