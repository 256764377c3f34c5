import type { EndpointPlacement } from '../config/lb-model';
import type { Host } from './host';
import type { LoadBalancer } from './load-balancer';
import { chooseLevel, priorityLoad } from './priority-load';

/** Envoy's overprovisioning factor as a ratio, for a locality's availability. */
const OVERPROVISIONING = 1.4;

/** The hosts one pick balances over, with the balancer that keeps that list's own state. */
export interface HostSource {
  readonly hosts: readonly Host[];
  readonly lb: LoadBalancer;
  /** The level is in panic: `hosts` includes the unhealthy ones. */
  readonly panic: boolean;
}

interface Locality {
  readonly source: HostSource;
  readonly weight: number;
  /** Smooth weighted round robin's running credit. */
  current: number;
}

interface Level {
  readonly healthySource: HostSource;
  readonly allSource: HostSource;
  readonly panic: boolean;
  readonly localities: readonly Locality[];
}

export interface PrioritySetInput {
  readonly hosts: readonly Host[];
  readonly placement: (host: Host) => EndpointPlacement;
  readonly isHealthy: (host: Host) => boolean;
  readonly panicThresholdPercent: number;
  readonly localityWeighted: boolean;
  /** The balancer for a host list by its key; a rebuilt set asks again and may get the same one back. */
  readonly balancer: (key: string) => LoadBalancer;
}

/**
 * A cluster's hosts as Envoy's priority set: one level per priority, load spread across levels by
 * their health (priority-load.ts), and, with locality-weighted balancing, a locality chosen within
 * the level by its weight times its availability before the cluster's balancer picks a host in it.
 * Rebuilt whenever hosts or their health change.
 */
export class PrioritySet {
  private constructor(
    readonly levels: readonly Level[],
    readonly load: readonly number[],
  ) {}

  static build(input: PrioritySetInput): PrioritySet {
    const byPriority = new Map<number, Host[]>();
    for (const h of input.hosts) {
      const p = input.placement(h).priority;
      const list = byPriority.get(p);
      if (list) list.push(h);
      else byPriority.set(p, [h]);
    }
    const priorities = [...byPriority.keys()].sort((a, b) => a - b);
    const groups = priorities.map((p) => {
      const hosts = byPriority.get(p)!;
      return { p, hosts, healthy: hosts.filter(input.isHealthy) };
    });
    const { load, panic } = priorityLoad(groups.map((g) => ({ healthy: g.healthy.length, total: g.hosts.length })), input.panicThresholdPercent);
    const levels = groups.map((g, i): Level => ({
      healthySource: { hosts: g.healthy, lb: input.balancer(`${g.p}/healthy`), panic: false },
      allSource: { hosts: g.hosts, lb: input.balancer(`${g.p}/all`), panic: true },
      panic: panic[i]!,
      localities: input.localityWeighted ? localities(g.p, g.hosts, input) : [],
    }));
    return new PrioritySet(levels, load);
  }

  /** The host list for one request; `draw` in [0, 100) picks the level. Null when there are no hosts. */
  choose(draw: number): HostSource | null {
    const level = this.levels[chooseLevel(this.load, draw)];
    if (!level) return null;
    if (level.panic) return level.allSource;
    return pickLocality(level.localities) ?? level.healthySource;
  }
}

function localities(priority: number, hosts: readonly Host[], input: PrioritySetInput): Locality[] {
  const byKey = new Map<string, { hosts: Host[]; weight: number }>();
  for (const h of hosts) {
    const where = input.placement(h);
    const entry = byKey.get(where.locality) ?? { hosts: [], weight: where.localityWeight };
    entry.hosts.push(h);
    byKey.set(where.locality, entry);
  }
  return [...byKey].map(([key, e]) => {
    const healthy = e.hosts.filter(input.isHealthy);
    const availability = Math.min(1, (OVERPROVISIONING * healthy.length) / e.hosts.length);
    return { source: { hosts: healthy, lb: input.balancer(`${priority}/healthy/${key}`), panic: false }, weight: e.weight * availability, current: 0 };
  });
}

/** Smooth weighted round robin over the localities with weight; null when none has any. */
function pickLocality(list: readonly Locality[]): HostSource | null {
  let total = 0;
  let best: Locality | null = null;
  for (const l of list) {
    if (l.weight <= 0) continue;
    total += l.weight;
    l.current += l.weight;
    if (best === null || l.current > best.current) best = l;
  }
  if (best === null) return null;
  best.current -= total;
  return best.source;
}
