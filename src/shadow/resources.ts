import type { MirrorFilterConfig, MirrorLimit } from '../config/model';
import type { Logger } from '../log/logger';
import { HookRunner, type HookObserver } from './hooks';
import { createLimiter } from './limit';
import type { LimitConfig, MirrorLimiter } from './limit/limiter';

/**
 * What extended policies hold on to across config updates: budgets (so a reload does not reset a
 * window, and Redis connections are shared) and loaded hook modules. Owned by the proxy; closed
 * with it.
 */
export class MirrorResources {
  readonly #limiters = new Map<string, MirrorLimiter>();
  readonly #hooks = new Map<string, HookRunner>();

  constructor(
    private readonly logger: Logger,
    private readonly baseDir: string = process.cwd(),
  ) {}

  /** The limiter for a policy's limit; a named Redis connection is looked up in the filter config. */
  limiter(limit: MirrorLimit, filter: MirrorFilterConfig | null): MirrorLimiter {
    const config = limitConfig(limit, filter);
    const key = JSON.stringify(config);
    let limiter = this.#limiters.get(key);
    if (!limiter) this.#limiters.set(key, (limiter = createLimiter(config, this.logger)));
    return limiter;
  }

  /** Loads (once per policy) a hook module; throws a clear error when it cannot. */
  hooks(policy: string, module: string, timeoutMs: number, observe: HookObserver): HookRunner {
    const key = `${policy}\u0001${module}\u0001${timeoutMs}`;
    let runner = this.#hooks.get(key);
    if (!runner) {
      runner = HookRunner.load(module, { timeoutMs, logger: this.logger, baseDir: this.baseDir, observe });
      this.#hooks.set(key, runner);
    }
    return runner;
  }

  async close(): Promise<void> {
    const limiters = [...this.#limiters.values()];
    this.#limiters.clear();
    await Promise.all(limiters.map((l) => l.close().catch(() => undefined)));
  }
}

export function limitConfig(limit: MirrorLimit, filter: MirrorFilterConfig | null): LimitConfig {
  const base = { count: limit.count, windowMs: limit.windowMs, key: limit.key, onError: limit.onRedisError };
  if (limit.store === 'local' || !limit.redis) return { ...base, store: { kind: 'local' } };
  const conn = limit.redis.kind === 'named' ? filter?.redis.get(limit.redis.name) : limit.redis;
  if (!conn) throw new Error(`no Redis connection named "${(limit.redis as { name: string }).name}" in the mirror filter's config`);
  return { ...base, store: { kind: 'redis', target: conn } };
}
