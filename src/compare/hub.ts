import type { CompareConfig, MirrorFilterConfig, RedisConnectionModel } from '../config/model';
import type { Logger } from '../log/logger';
import { type RedisClientPool, defaultRedisPool } from '../shadow/limit/redis';
import { type FleetCounts, type FleetOptions, FleetPublisher, type FleetRedis, readFleet } from './fleet';
import { absoluteDifference, relativeDifference, verdict } from './noise';
import { patternSet } from './rules';
import type { CompareReport, FieldReport, PolicyReport } from './report-types';
import { CompareRegistry } from './store';
import type { CompareOutcome, ComparedRequest, DiffKind } from './types';

// The proxy's comparison results: the store every comparing policy records into, and for
// policies with `fleet`, the publisher that shares their counts through Redis and the sum read back.

/** A policy's fleet read: sidecars summed (and documents too large to read), or why it failed. */
type FleetState = { nodes: number; unread?: number } | { error: string };

interface Fleet {
  readonly options: FleetOptions;
  readonly redis: FleetRedis;
  readonly publisher: FleetPublisher;
  readonly release: () => Promise<void>;
  readonly target: string;
}

export class CompareHub {
  readonly registry = new CompareRegistry();
  readonly #fleets = new Map<string, Fleet>();

  constructor(
    private readonly logger: Logger,
    /** This sidecar among the fleet's (node id, host and pid). */
    private readonly nodeId: string,
    private readonly pool: RedisClientPool = defaultRedisPool,
  ) {}

  /** Registers (or updates) a comparing policy; throws when its fleet names no Redis connection. */
  configure(policy: string, c: CompareConfig, filter: MirrorFilterConfig | null): void {
    this.registry.configure(policy, {
      limits: {
        maxBytes: c.store.maxBytes,
        samplesPerField: c.store.samplesPerField,
        sampleBodyBytes: c.store.sampleBodyBytes,
        redactHeaders: new Set(c.store.redactHeaders),
        redactBodyPaths: patternSet(c.store.redactBodyPaths),
      },
      thresholds: c.thresholds,
      configIgnore: patternSet(c.ignore),
      hasReference: c.referenceCluster !== null,
    });
    this.#configureFleet(policy, c, filter);
  }

  record(result: ComparedRequest): 'match' | 'diff' | 'noise_only' | null {
    return this.registry.record(result);
  }

  count(policy: string, outcome: CompareOutcome): void {
    this.registry.count(policy, outcome);
  }

  /** The fleet's sum for every policy that publishes; the others as this sidecar sees them. */
  async fleetReport(): Promise<CompareReport & { readonly fleet: Record<string, FleetState> }> {
    const local = this.registry.report();
    const fleet: Record<string, FleetState> = {};
    const policies = await Promise.all(local.policies.map(async (p) => {
      const f = this.#fleets.get(p.name);
      if (!f) return p;
      try {
        const { nodes, unread, counts } = await readFleet(f.redis, f.options, p.name);
        fleet[p.name] = unread > 0 ? { nodes, unread } : { nodes };
        return summed(p, counts);
      } catch (err) {
        fleet[p.name] = { error: (err as Error).message };
        return p;
      }
    }));
    return { ...local, policies, fleet };
  }

  async close(): Promise<void> {
    const all = [...this.#fleets.values()];
    this.#fleets.clear();
    for (const f of all) f.publisher.stop();
    await Promise.all(all.map((f) => f.release()));
  }

  #configureFleet(policy: string, c: CompareConfig, filter: MirrorFilterConfig | null): void {
    const existing = this.#fleets.get(policy);
    if (c.fleet === null) {
      if (existing) this.#drop(policy, existing);
      return;
    }
    const named = c.fleet.redis;
    const target: RedisConnectionModel | undefined = named.kind === 'named' ? filter?.redis.get(named.name) : named;
    if (!target) throw new Error(`compare.fleet: no Redis connection named "${(named as { name: string }).name}" in the mirror filter's redis map`);
    const options: FleetOptions = { keyPrefix: c.fleet.keyPrefix, intervalMs: c.fleet.intervalMs, nodeId: this.nodeId };
    const id = JSON.stringify([target, options]);
    if (existing?.target === id) return;
    if (existing) this.#drop(policy, existing);
    const conn = this.pool.hold(target, this.logger);
    const redis = conn.client as unknown as FleetRedis;
    const publisher = new FleetPublisher(redis, options, policy, () => this.#counts(policy), this.logger);
    publisher.start();
    this.#fleets.set(policy, { options, redis, publisher, target: id, release: () => this.pool.release(conn) });
  }

  #drop(policy: string, f: Fleet): void {
    f.publisher.stop();
    this.#fleets.delete(policy);
    void f.release();
  }

  #counts(policy: string): FleetCounts | null {
    const p = this.registry.report().policies.find((x) => x.name === policy);
    if (!p) return null;
    return {
      outcomes: p.outcomes,
      endpoints: p.endpoints.map((e) => ({
        name: e.name, total: e.total, diffs: e.diffs, noise_only: e.noise_only,
        fields: e.fields.map((f) => ({ path: f.path, diffs: f.diffs, noise: f.noise })),
      })),
    };
  }
}

/** A policy's report with the fleet's counts in place of this sidecar's; verdicts by the same rules. */
function summed(local: PolicyReport, counts: FleetCounts): PolicyReport {
  const rules = patternSet([...local.rules.config, ...local.rules.runtime]);
  const configRules = patternSet(local.rules.config);
  const samplesHere = new Map(local.endpoints.flatMap((e) => e.fields.map((f) => [`${e.name}\u0000${f.path}`, f] as const)));
  const endpoints = counts.endpoints.map((e) => {
    const fields: FieldReport[] = e.fields.map((f) => {
      const colon = f.path.lastIndexOf(':');
      const field = colon > 0 ? f.path.slice(0, colon) : f.path;
      const mine = samplesHere.get(`${e.name}\u0000${f.path}`);
      const ignored = rules.matches(field);
      return {
        path: f.path, field, kind: f.path.slice(colon + 1) as DiffKind, diffs: f.diffs, noise: f.noise,
        diff_pct: pct(f.diffs, e.total), noise_pct: pct(f.noise, e.total),
        relative: relativeDifference(f.diffs, f.noise), absolute: absoluteDifference(f.diffs, f.noise, e.total),
        verdict: ignored ? 'noise' : verdict(f.diffs, f.noise, e.total, local.thresholds),
        reason: ignored ? 'ignored' : 'measured',
        ...(ignored ? { source: configRules.matches(field) ? 'config' : 'runtime' } as const : {}),
        samples: mine?.samples ?? 0, last_seen: mine?.last_seen ?? '',
      };
    });
    fields.sort((a, b) => (a.verdict === b.verdict ? b.diffs - a.diffs : a.verdict === 'diff' ? -1 : 1));
    return { name: e.name, total: e.total, diffs: e.diffs, noise_only: e.noise_only, diff_rate: pct(e.diffs, e.total),
      diff_fields: fields.filter((f) => f.verdict === 'diff').length, fields };
  });
  endpoints.sort((a, b) => b.diff_rate - a.diff_rate);
  const o = counts.outcomes as PolicyReport['outcomes'];
  const outcomes = Object.fromEntries(Object.keys(local.outcomes).map((k) => [k, o[k as CompareOutcome] ?? 0])) as PolicyReport['outcomes'];
  const compared = outcomes.match + outcomes.diff + outcomes.noise_only;
  return { ...local, outcomes, compared, diff_rate: pct(outcomes.diff, compared), endpoints };
}

function pct(part: number, whole: number): number {
  return whole <= 0 ? 0 : Math.round((part / whole) * 1e6) / 1e4;
}
