// The Redis store of the mirror budget; the only module that imports ioredis.
//
// One atomic Lua script per acquire: INCR the counter of the current window, give it a TTL on its
// first increment, return the count; a mirror is allowed iff the count <= the limit. Windows are
// aligned to the wall clock (index = floor(now / windowMs)), so every sidecar that points at the
// same Redis with the same key counts into the same key, within the skew of their clocks.
//
// Failure is bounded and never thrown: each acquire races a timer of target.timeoutMs (and ioredis
// has commandTimeout as a backstop that reclaims stuck commands); the offline queue is off so an
// unreachable Redis fails at once instead of queueing, and the client reconnects in the background
// with a capped backoff so the budget comes back when Redis does.

import type { ConnectionOptions } from 'node:tls';
import type { Cluster, ClusterOptions, default as Redis, RedisOptions } from 'ioredis';
import type { Logger } from '../../log/logger';
import type { LimitConfig, LimitDecision, MirrorLimiter, RedisTarget } from './limiter';

/** ioredis, loaded when the first client is made: a proxy without Redis never pays for it (about 10 MB). */
function ioredis(): typeof import('ioredis') {
  return require('ioredis') as typeof import('ioredis');
}

/** KEYS[1] = the window's counter, ARGV[1] = its TTL in ms. Returns the count after this take. */
const ACQUIRE_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`;
const ACQUIRE_COMMAND = 'sidemirrorMirrorLimitAcquire';

/** Longest pause between reconnect attempts. */
const MAX_RECONNECT_DELAY_MS = 1000;
/** At most one log line about an unreachable Redis per connection per this long. */
const ERROR_LOG_INTERVAL_MS = 10_000;

type Client = Redis | Cluster;
type ScriptClient = Client & {
  [ACQUIRE_COMMAND](key: string, ttlMs: number): Promise<number>;
};

/**
 * The Redis key of one window of one budget. The braces are a hash tag, so every window of a key
 * lands in one Redis Cluster hash slot (on one node).
 *
 * For a cluster target, `name` prefixes the key. In APISIX, the redis-cluster policy's
 * `redis_cluster_name` identifies the cluster (it names the cache of its slot map); here it is a
 * namespace for the budget: limiters sharing one cluster but configured with different names count
 * separately, and the same name + key on any sidecar shares a budget.
 */
export function mirrorLimitKey(target: RedisTarget, key: string, windowIndex: number): string {
  const namespace = target.kind === 'cluster' ? `sidemirror:${target.name}:mirror-limit` : 'sidemirror:mirror-limit';
  return `${namespace}:{${key}}:${windowIndex}`;
}

/**
 * Identity of a connection: everything the client is built from (password, username and TLS
 * material included, so a rotated secret makes a new connection). Never logged.
 */
function connectionId(target: RedisTarget): string {
  const { password, username, tls, timeoutMs } = target;
  const security = [password, username, tls && [tls.ca, tls.cert, tls.key, tls.serverName], timeoutMs];
  if (target.kind === 'single') {
    const { server, database } = target;
    return JSON.stringify(['single', server.host, server.port, database, ...security]);
  }
  // `name` is only a key namespace, so targets differing only in name share a connection.
  const nodes = target.nodes.map((n) => `${n.host}:${n.port}`).sort();
  return JSON.stringify(['cluster', nodes, ...security]);
}

/** Where a connection goes, for logs: never the password, nor the username (sensitive, as in Envoy). */
function describeTarget(target: RedisTarget): string {
  const scheme = target.tls ? 'rediss' : 'redis';
  if (target.kind === 'single') return `${scheme}://${target.server.host}:${target.server.port}/${target.database}`;
  return `${scheme}-cluster(${target.nodes.map((n) => `${n.host}:${n.port}`).join(',')})`;
}

/** Node TLS options: the server's certificate is always verified (against `ca` when given). */
function tlsOptions(tls: NonNullable<RedisTarget['tls']>): ConnectionOptions {
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
    ...(tls.serverName ? { servername: tls.serverName } : {}),
    rejectUnauthorized: true,
  };
}

function reconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.max(0, attempt - 1), MAX_RECONNECT_DELAY_MS);
}

function createClient(target: RedisTarget): ScriptClient {
  const common: RedisOptions = {
    password: target.password ?? undefined,
    username: target.username ?? undefined,
    ...(target.tls ? { tls: tlsOptions(target.tls) } : {}),
    connectTimeout: Math.max(target.timeoutMs, 1000),
    commandTimeout: target.timeoutMs,
    maxRetriesPerRequest: 0,
    connectionName: 'sidemirror-mirror-limit',
  };
  let client: Client;
  if (target.kind === 'single') {
    client = new (ioredis().default)({
      ...common,
      host: target.server.host,
      port: target.server.port,
      db: target.database,
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: reconnectDelay,
    });
  } else {
    const options: ClusterOptions = {
      lazyConnect: true,
      // Per-node connections keep ioredis's own offline queue (they are created lazily and must
      // accept the first command); the cluster-level queue is what would hold commands while the
      // cluster is unreachable, and it is off.
      enableOfflineQueue: false,
      clusterRetryStrategy: reconnectDelay,
      slotsRefreshTimeout: Math.max(target.timeoutMs, 1000),
      maxRedirections: 4,
      redisOptions: common,
    };
    client = new (ioredis().Cluster)(
      target.nodes.map((n) => ({ host: n.host, port: n.port })),
      options,
    );
  }
  // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (e.g. after a Redis restart).
  client.defineCommand(ACQUIRE_COMMAND, { numberOfKeys: 1, lua: ACQUIRE_SCRIPT });
  return client as ScriptClient;
}

/** One shared client and what the limiters using it need to know about its health. */
class PooledConnection {
  refs = 0;
  /** Set by a connection error or close, cleared by 'ready': while set, acquires fail at once. */
  private down = false;
  /** The first connection attempt, shared by every acquire that arrives during it. */
  private firstConnect: Promise<boolean> | null = null;
  private lastLogAt = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    readonly id: string,
    readonly client: ScriptClient,
    private readonly logger: Logger,
    private readonly where: string,
  ) {
    client.on('ready', () => {
      this.down = false;
    });
    client.on('close', () => {
      this.down = true;
    });
    // A listener keeps ioredis from printing "Unhandled error event"; logs are rate limited.
    client.on('error', (err: Error) => {
      this.down = true;
      this.logError(err);
    });
    if (client instanceof ioredis().Cluster) client.on('node error', (err: Error, node: string) => this.logError(err, node));
  }

  /**
   * Whether a command can be sent now. During the first connection this waits for its outcome
   * (the caller bounds the wait); once a connection has failed it answers false at once until the
   * background reconnect succeeds.
   */
  usable(): boolean | Promise<boolean> {
    const status = this.client.status;
    if (status === 'ready') return true;
    if (this.down || status === 'end' || status === 'close' || status === 'disconnecting') return false;
    if (!this.firstConnect) {
      this.firstConnect = new Promise<boolean>((resolve) => {
        const settle = (ok: boolean): void => {
          this.client.off('ready', onReady);
          this.client.off('error', onFail);
          this.client.off('close', onFail);
          this.client.off('end', onFail);
          this.firstConnect = null;
          resolve(ok);
        };
        const onReady = (): void => settle(true);
        const onFail = (): void => settle(false);
        this.client.once('ready', onReady);
        this.client.once('error', onFail);
        this.client.once('close', onFail);
        this.client.once('end', onFail);
      });
      if (status === 'wait') this.client.connect().catch(() => undefined);
    }
    return this.firstConnect;
  }

  async disconnect(): Promise<void> {
    const client = this.client;
    const status = client.status;
    if (status === 'end') return;
    // Between reconnect attempts (or never connected) there is no socket to close and ioredis
    // emits no 'end': cancelling the reconnect timer is all there is to do.
    if (status !== 'connecting' && status !== 'connect' && status !== 'ready') {
      client.disconnect();
      return;
    }
    const ended = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      timer.unref();
      client.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    client.disconnect();
    await ended;
  }

  private logError(err: Error, node?: string): void {
    const now = Date.now();
    if (now - this.lastLogAt < ERROR_LOG_INTERVAL_MS) {
      this.suppressed += 1;
      return;
    }
    this.logger.warn(
      { redis: this.where, node, err: err.message, suppressedSinceLast: this.suppressed },
      'mirror limit: redis error; mirrors it cannot count follow the policy onError',
    );
    this.lastLogAt = now;
    this.suppressed = 0;
  }
}

/**
 * Shares clients between limiters: one connection per Redis target (host, port and database, or
 * cluster nodes; with password, username, TLS and timeout), reference counted and closed when its
 * last limiter closes.
 */
export class RedisClientPool {
  private readonly connections = new Map<string, PooledConnection>();

  /** @internal */
  hold(target: RedisTarget, logger: Logger): PooledConnection {
    const id = connectionId(target);
    let conn = this.connections.get(id);
    if (!conn) {
      conn = new PooledConnection(id, createClient(target), logger, describeTarget(target));
      this.connections.set(id, conn);
      // Connect now, while the config is being applied: otherwise the first mirror's check would
      // spend its whole timeout (100 ms by default) connecting, and be skipped as limit_error.
      void conn.usable();
    }
    conn.refs += 1;
    return conn;
  }

  /** @internal */
  async release(conn: PooledConnection): Promise<void> {
    conn.refs -= 1;
    if (conn.refs > 0) return;
    if (this.connections.get(conn.id) === conn) this.connections.delete(conn.id);
    await conn.disconnect();
  }

  /** Number of open clients; for tests and stats. */
  get size(): number {
    return this.connections.size;
  }
}

/** The pool every limiter in this process uses unless told otherwise. */
export const defaultRedisPool = new RedisClientPool();

export interface RedisLimiterOptions {
  /** Wall clock in ms; injectable for tests. */
  readonly now?: () => number;
  /** Defaults to the process-wide pool; a separate pool means separate clients (as another sidecar would have). */
  readonly pool?: RedisClientPool;
}

/** At most `count` mirrors per wall-clock window, counted in Redis and shared by every sidecar using the same key. */
export class RedisLimiter implements MirrorLimiter {
  private readonly now: () => number;
  private readonly pool: RedisClientPool;
  private readonly conn: PooledConnection;
  private closed = false;

  constructor(
    private readonly config: Pick<LimitConfig, 'count' | 'windowMs' | 'key'>,
    private readonly target: RedisTarget,
    logger: Logger,
    options: RedisLimiterOptions = {},
  ) {
    if (!(config.windowMs > 0)) throw new Error(`mirror limit window must be > 0 ms, got ${config.windowMs}`);
    if (!(target.timeoutMs > 0)) throw new Error(`redis timeout must be > 0 ms, got ${target.timeoutMs}`);
    this.now = options.now ?? Date.now;
    this.pool = options.pool ?? defaultRedisPool;
    this.conn = this.pool.hold(target, logger);
  }

  acquire(): Promise<LimitDecision> {
    if (this.closed) return Promise.resolve('error');
    const { windowMs } = this.config;
    const key = mirrorLimitKey(this.target, this.config.key, Math.floor(this.now() / windowMs));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<LimitDecision>((resolve) => {
      timer = setTimeout(() => resolve('error'), this.target.timeoutMs);
      timer.unref();
    });
    return Promise.race([this.take(key, windowMs * 2), timedOut]).finally(() => clearTimeout(timer));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.release(this.conn);
  }

  private async take(key: string, ttlMs: number): Promise<LimitDecision> {
    try {
      const usable = this.conn.usable();
      if (usable !== true && !(await usable)) return 'error';
      const count = Number(await this.conn.client[ACQUIRE_COMMAND](key, ttlMs));
      if (!Number.isFinite(count)) return 'error';
      return count <= this.config.count ? 'allowed' : 'limited';
    } catch {
      return 'error';
    }
  }
}
