import { isDeepStrictEqual } from 'node:util';
import { Pool, type Dispatcher } from 'undici';
import type { Cluster, ClusterLoadAssignment, LbEndpoint } from '../config/model';
import type { Logger } from '../log/logger';
import type { ClusterStats, StatsScopes } from '../stats/scopes';
import { type Host, formatAddressPort } from './host';
import { type LoadBalancer, createLoadBalancer } from './load-balancer';
import { type ResolvedEndpoint, type Resolver, resolveEndpoints, systemResolver } from './resolve';

export interface PoolOptions {
  readonly connectTimeoutMs: number;
  readonly maxConnections: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
}

/** Makes the keep-alive pool for one endpoint; tests and bench/ may swap it. */
export type PoolFactory = (origin: string, options: PoolOptions) => Dispatcher;

export const undiciPoolFactory: PoolFactory = (origin, o) =>
  new Pool(origin, {
    connections: o.maxConnections,
    connect: { timeout: o.connectTimeoutMs },
    keepAliveTimeout: o.keepAliveTimeoutMs,
    maxRequestsPerClient: o.maxRequestsPerConnection || undefined,
    // The router enforces Envoy's route timeout itself; undici's own idle timers stay out of it.
    headersTimeout: 0,
    bodyTimeout: 0,
  });

export interface ClusterManagerOptions {
  readonly stats: StatsScopes;
  readonly logger: Logger;
  readonly poolFactory?: PoolFactory;
  readonly resolver?: Resolver;
}

/** A cluster at run time: its hosts, their pools, its balancer and its stats. */
export class UpstreamCluster {
  readonly stats: ClusterStats;
  #hosts: Host[] = [];
  #healthy: Host[] = [];
  readonly #lb: LoadBalancer;
  #refreshTimer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Requests in flight across hosts, checked against the max_requests circuit breaker. */
  active = 0;
  /** Resolves once the first resolution (DNS) has been applied. */
  readonly ready: Promise<void>;

  constructor(
    readonly config: Cluster,
    private readonly options: Required<ClusterManagerOptions>,
  ) {
    this.stats = options.stats.cluster(config.name);
    this.#lb = createLoadBalancer(config.lbPolicy, config.leastRequestChoiceCount);
    this.ready = config.type === 'EDS' ? Promise.resolve() : this.#resolve();
    if (config.type === 'STRICT_DNS' || config.type === 'LOGICAL_DNS') {
      this.#refreshTimer = setInterval(() => void this.#resolve(), Math.max(config.dnsRefreshRateMs, 1000));
      this.#refreshTimer.unref();
    }
  }

  get name(): string {
    return this.config.name;
  }

  get hosts(): readonly Host[] {
    return this.#hosts;
  }

  get healthyHosts(): readonly Host[] {
    return this.#healthy;
  }

  /** The host for the next request, or null when none is healthy. */
  pick(): Host | null {
    return this.#lb.pick(this.#healthy);
  }

  /** EDS: a new ClusterLoadAssignment for this cluster. */
  async setEndpoints(endpoints: readonly LbEndpoint[]): Promise<void> {
    this.#apply(await resolveEndpoints(this.config, this.options.resolver, endpoints));
  }

  async #resolve(): Promise<void> {
    try {
      this.#apply(await resolveEndpoints(this.config, this.options.resolver));
    } catch (err) {
      // Keep the hosts we had: a failed re-resolution must not empty a working cluster.
      this.options.logger.warn({ cluster: this.name, err: (err as Error).message }, 'endpoint resolution failed');
    }
  }

  #apply(resolved: readonly ResolvedEndpoint[]): void {
    if (this.#closed) return;
    const previous = new Map(this.#hosts.map((h) => [h.addressPort, h]));
    const next: Host[] = [];
    for (const ep of resolved) {
      const key = formatAddressPort(ep.address, ep.port);
      const kept = previous.get(key);
      if (kept && !next.includes(kept)) {
        kept.healthy = ep.healthy;
        next.push(kept);
        previous.delete(key);
      } else if (!next.some((h) => h.addressPort === key)) {
        next.push(this.#createHost(ep, key));
      }
    }
    for (const gone of previous.values()) void gone.pool.close().catch(() => undefined);
    this.#hosts = next;
    this.#healthy = next.filter((h) => h.healthy);
    this.stats.members.set(next.length);
  }

  #createHost(ep: ResolvedEndpoint, addressPort: string): Host {
    const cb = this.config.circuitBreakers;
    const pool = this.options.poolFactory(`http://${addressPort}`, {
      connectTimeoutMs: this.config.connectTimeoutMs,
      maxConnections: cb.maxConnections,
      keepAliveTimeoutMs: Math.min(this.config.idleTimeoutMs, 60_000),
      maxRequestsPerConnection: this.config.maxRequestsPerConnection,
    });
    const host: Host = {
      address: ep.address,
      port: ep.port,
      addressPort,
      hostname: ep.hostname,
      weight: ep.weight,
      pool,
      healthy: ep.healthy,
      active: 0,
      counters: { rqTotal: 0, rqSuccess: 0, rqError: 0, rqTimeout: 0, cxTotal: 0, cxConnectFail: 0 },
    };
    pool.on('connect', () => {
      host.counters.cxTotal++;
      this.stats.cxTotal.inc();
    });
    pool.on('connectionError', () => {
      host.counters.cxConnectFail++;
      this.stats.cxConnectFail.inc();
    });
    return host;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
    const hosts = this.#hosts;
    this.#hosts = [];
    this.#healthy = [];
    await Promise.all(hosts.map((h) => h.pool.close().catch(() => undefined)));
  }

  /** Closes at once, failing what is in flight; for shutdown after the drain period. */
  async destroy(): Promise<void> {
    this.#closed = true;
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
    await Promise.all(this.#hosts.map((h) => h.pool.destroy().catch(() => undefined)));
  }
}

/** Owns every cluster; a config update keeps the clusters whose definition did not change. */
export class ClusterManager {
  readonly #clusters = new Map<string, UpstreamCluster>();
  /** EDS assignments by service name, kept so a recreated cluster gets its endpoints back. */
  readonly #assignments = new Map<string, ClusterLoadAssignment>();
  readonly #options: Required<ClusterManagerOptions>;

  constructor(options: ClusterManagerOptions) {
    this.#options = { ...options, poolFactory: options.poolFactory ?? undiciPoolFactory, resolver: options.resolver ?? systemResolver };
  }

  get(name: string): UpstreamCluster | undefined {
    return this.#clusters.get(name);
  }

  all(): UpstreamCluster[] {
    return [...this.#clusters.values()];
  }

  /**
   * Makes the set of clusters equal to `clusters`. Resolves when every new cluster has its
   * first endpoints (Envoy's cluster warming); removed clusters drain their pools.
   */
  async update(clusters: readonly Cluster[]): Promise<void> {
    const wanted = new Map(clusters.map((c) => [c.name, c]));
    const warming: Promise<void>[] = [];
    for (const [name, existing] of this.#clusters) {
      if (!wanted.has(name)) {
        this.#clusters.delete(name);
        void existing.close();
      }
    }
    for (const config of clusters) {
      const existing = this.#clusters.get(config.name);
      if (existing && isDeepStrictEqual(existing.config, config)) continue;
      const created = new UpstreamCluster(config, this.#options);
      this.#clusters.set(config.name, created);
      warming.push(created.ready);
      const assignment = config.type === 'EDS' ? this.#assignments.get(config.edsServiceName ?? config.name) : undefined;
      if (assignment) warming.push(created.setEndpoints(assignment.endpoints));
      if (existing) void existing.close();
    }
    await Promise.all(warming);
  }

  /** EDS: endpoints for the clusters whose service name this assignment carries. */
  setLoadAssignment(cla: ClusterLoadAssignment): void {
    this.#assignments.set(cla.clusterName, cla);
    for (const c of this.#clusters.values()) {
      if (c.config.type === 'EDS' && (c.config.edsServiceName ?? c.config.name) === cla.clusterName) void c.setEndpoints(cla.endpoints);
    }
  }

  async close(): Promise<void> {
    const all = this.all();
    this.#clusters.clear();
    await Promise.all(all.map((c) => c.destroy()));
  }
}
