import type { ConfigIssue } from '../config/errors';
import type { MirrorFilterConfig, MirrorHooksConfig, MirrorLimit } from '../config/model';
import type { Logger } from '../log/logger';
import { HookDirs } from './hook-dirs';
import { loadModuleFile } from './hook-loader';
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
  /** Loaded modules by the path as written: each is evaluated once, however many policies name it. */
  readonly #modules = new Map<string, { readonly file: string; readonly exports: unknown }>();

  constructor(
    private readonly logger: Logger,
    private readonly hookDirs: HookDirs = HookDirs.NONE,
  ) {}

  /**
   * Locates and loads every hook module named, so that a configuration naming one that is not
   * allowed, missing, broken or hookless is refused before it is applied. Issues name the field.
   */
  checkHooks(refs: readonly MirrorHooksConfig[]): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    for (const ref of refs) {
      try {
        const { file, exports } = this.#module(ref.module);
        HookRunner.fromFile(file, exports, { timeoutMs: ref.timeoutMs, logger: this.logger });
      } catch (err) {
        issues.push({ path: `${ref.path}.module`, message: (err as Error).message });
      }
    }
    return issues;
  }

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
      const { file, exports } = this.#module(module);
      runner = HookRunner.fromFile(file, exports, { timeoutMs, logger: this.logger, observe });
      this.#hooks.set(key, runner);
    }
    return runner;
  }

  #module(module: string): { file: string; exports: unknown } {
    let loaded = this.#modules.get(module);
    if (!loaded) {
      const file = this.hookDirs.locate(module);
      loaded = { file, exports: loadModuleFile(file) };
      this.#modules.set(module, loaded);
    }
    return loaded;
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
