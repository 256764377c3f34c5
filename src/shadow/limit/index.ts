import type { Logger } from '../../log/logger';
import type { LimitConfig, MirrorLimiter } from './limiter';
import { defaultLocalCounters } from './local';
import { RedisLimiter } from './redis';

export type { LimitConfig, LimitDecision, MirrorLimiter, RedisServer, RedisTarget } from './limiter';
export { LocalLimiter } from './local';
export { RedisLimiter, RedisClientPool } from './redis';

/**
 * The limiter for one mirror policy. `local` counts in this process (limiters with the same key
 * and window share one counter here); `redis` counts in Redis, shared by every sidecar pointing at
 * it, over a connection shared by every policy pointing at the same target. Close it when the
 * policy goes away.
 */
export function createLimiter(config: LimitConfig, logger: Logger): MirrorLimiter {
  switch (config.store.kind) {
    case 'local':
      return defaultLocalCounters.create(config);
    case 'redis':
      return new RedisLimiter(config, config.store.target, logger);
  }
}
