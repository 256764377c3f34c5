import type { RedisConnectionModel, RedisServerAddress } from '../../config/model';

// A mirror budget: at most `count` mirrors per `windowMs`, counted in this process or in Redis so
// that every sidecar pointing at the same Redis shares one budget.

export type LimitDecision = 'allowed' | 'limited' | 'error';

/** A Redis server or cluster to keep budgets in: the mirror filter's config, as decoded. */
export type RedisTarget = RedisConnectionModel;
export type RedisServer = RedisServerAddress;

export interface LimitConfig {
  readonly count: number;
  readonly windowMs: number;
  /** Names the budget; policies with the same key share it (in Redis: across sidecars). */
  readonly key: string;
  readonly store: { readonly kind: 'local' } | { readonly kind: 'redis'; readonly target: RedisTarget };
  /** What an unreachable Redis means: skip the mirror (default) or let it through. */
  readonly onError: 'skip' | 'allow';
}

export interface MirrorLimiter {
  /**
   * Takes one mirror from the budget. Never rejects and never waits longer than the store's
   * timeout: a store that cannot answer yields 'error', which the caller maps through onError.
   */
  acquire(): LimitDecision | Promise<LimitDecision>;
  close(): Promise<void>;
}
