// A cluster at run time (hosts, pools, balancers, health and outlier state); the manager that
// owns every cluster is cluster-manager.ts.

import type { ConnectionOptions } from 'node:tls';
import type { Cluster, ClusterLoadAssignment, LbEndpoint } from '../config/model';
import { DEFAULT_PLACEMENT, type EndpointPlacement } from '../config/lb-model';
import { HTTP2_DEFAULTS } from '../config/decode/http2';
import type { UpstreamTlsContext } from '../config/transport-model';
import type { Logger } from '../log/logger';
import type { ClusterStats, StatsScopes } from '../stats/scopes';
import { Http2Pool } from './h2-pool';
import { HealthChecker } from './health';
import { type Host, formatAddressPort } from './host';
import { type HashKey, type LoadBalancer, createLoadBalancer } from './load-balancer';
import { OutlierDetector } from './outlier/detector';
import { PrioritySet } from './priority-set';
import { hashKeyToU64 } from './load-balancer/ring-hash';
import type { PoolFactory } from './pool-factory';
import { type ResolvedEndpoint, type Resolver, literalEndpoints, resolveEndpoints } from './resolve';

/** Turns an UpstreamTlsContext into Node's client TLS options (src/tls); null when it cannot be built yet. */
export type ClientTlsFactory = (ctx: UpstreamTlsContext, cluster: Cluster) => ConnectionOptions | null;

export interface ClusterManagerOptions {
  readonly stats: StatsScopes;
  readonly logger: Logger;
  readonly poolFactory?: PoolFactory;
  readonly resolver?: Resolver;
  readonly clientTls?: ClientTlsFactory;
}

/** Why a cluster has no host to balance over normally: none passes its health checks, or those that do are ejected. */
export type HostAvailability = 'available' | 'none_healthy' | 'all_ejected';

/** A cluster at run time: its hosts, their pools, its balancer and its stats. */
export class UpstreamCluster {
  readonly stats: ClusterStats;
  #hosts: Host[] = [];
  #healthy: Host[] = [];
  /** Hosts by priority and locality, with the balancer of each host list (priority-set.ts). */
  #set: PrioritySet;
  #balancers = new Map<string, LoadBalancer>();
  #placement = new Map<Host, EndpointPlacement>();
  /** Active health checking, when the cluster configures it. */
  readonly #hc: HealthChecker | null;
  /** Outlier detection (passive health checking), when the cluster configures it. */
  readonly #outlier: OutlierDetector | null;
  /** Set by the first traffic connection; until then health checks use no_traffic_interval. */
  #hadTraffic = false;
  #refreshTimer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Requests in flight across hosts, checked against the max_requests circuit breaker. */
  active = 0;
  /** Retries under way (decided, not yet answered), checked against the max_retries circuit breaker. */
  retriesActive = 0;
  /** Upstream connections the TCP proxy holds (connecting or open), checked against max_connections. */
  tcpConnections = 0;
  /** Resolves once the first resolution (DNS) has been applied. */
  readonly ready: Promise<void>;

  constructor(
    readonly config: Cluster,
    private readonly options: Required<ClusterManagerOptions>,
  ) {
    this.stats = options.stats.cluster(config.name);
    this.#set = this.#buildSet();
    this.#outlier = config.outlierDetection
      ? new OutlierDetector({ config: config.outlierDetection, stats: this.stats.outlierDetection, onChange: () => this.#updateHealthy() })
      : null;
    this.#hc = config.healthCheck
      ? new HealthChecker({
          clusterName: config.name,
          config: config.healthCheck,
          stats: this.stats.healthCheck,
          onChange: () => this.#updateHealthy(),
          hadTraffic: () => this.#hadTraffic,
          onPassed: (host) => this.#outlier?.healthCheckPassed(host),
          checkTarget: (host) => {
            const p = this.#placement.get(host);
            return { port: p?.healthCheckPort ?? null, hostname: p?.healthCheckHostname ?? '' };
          },
        })
      : null;
    // Like Envoy's cluster warming, a health-checked cluster is ready once each host had a check.
    const literal = config.type === 'EDS' ? null : literalEndpoints(config);
    if (literal) this.#apply(literal);
    const resolved = config.type === 'EDS' || literal ? Promise.resolve() : this.#resolve();
    this.ready = this.#hc ? resolved.then(() => this.#hc?.firstRound()) : resolved;
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

  /**
   * The host for the next request: a priority level by its share of the load, then (with
   * locality-weighted balancing) a locality, then the balancer among the healthy hosts there, or
   * among all the level's hosts when it is in panic; null when there is none. `hashKey` is the request's hash (route hash_policy) for RING_HASH;
   * other balancers ignore it. `attempt`: see LoadBalancer.pick.
   */
  pick(hashKey?: HashKey, attempt = 0): Host | null {
    const set = this.#set;
    // As Envoy's hashing balancers do, a request's hash also picks its level, so it sticks to one.
    const draw = set.levels.length < 2 ? 0 : hashKey === undefined || hashKey === null ? Math.floor(Math.random() * 100) : Number(hashKeyToU64(hashKey) % 100n);
    const source = set.choose(draw);
    if (source === null) return null;
    if (source.panic) this.stats.lbHealthyPanic.inc();
    return source.lb.pick(source.hosts, hashKey, attempt);
  }

  /** Whether a healthy, non-ejected host exists, and if not, why (for shadows, which skip at once). */
  availability(): HostAvailability {
    if (this.#healthy.length > 0) return 'available';
    const hc = this.#hc;
    const outlier = this.#outlier;
    if (outlier !== null && this.#hosts.some((h) => h.healthy && !(hc?.failed(h) ?? false) && outlier.isEjected(h))) return 'all_ejected';
    return 'none_healthy';
  }

  /** True while `host` fails active health checks (or has not passed its first one yet). */
  failedActiveHealthCheck(host: Host): boolean {
    return this.#hc?.failed(host) ?? false;
  }

  /** True while outlier detection keeps `host` out of load balancing. */
  failedOutlierCheck(host: Host): boolean {
    return this.#outlier?.isEjected(host) ?? false;
  }

  /** The outlier detector, for /clusters' success rates; null without outlier detection. */
  get outlierDetector(): OutlierDetector | null {
    return this.#outlier;
  }

  /** Envoy's /clusters health_flags: `healthy`, or the failing flags in Envoy's order (`/failed_active_hc`…). */
  healthFlags(host: Host): string {
    let flags = '';
    if (this.failedActiveHealthCheck(host)) flags += '/failed_active_hc';
    if (this.failedOutlierCheck(host)) flags += '/failed_outlier_check';
    if (!host.healthy) flags += '/failed_eds_health';
    return flags || 'healthy';
  }

  /** EDS: a new ClusterLoadAssignment for this cluster; with health checks, once new hosts had one. */
  async setEndpoints(endpoints: readonly LbEndpoint[]): Promise<void> {
    this.#apply(await resolveEndpoints(this.config, this.options.resolver, endpoints));
    await this.#hc?.firstRound();
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
    const placement = new Map<Host, EndpointPlacement>();
    for (const ep of resolved) {
      const key = formatAddressPort(ep.address, ep.port);
      const kept = previous.get(key);
      if (kept && !next.includes(kept)) {
        kept.healthy = ep.healthy;
        next.push(kept);
        placement.set(kept, ep.placement);
        previous.delete(key);
      } else if (!next.some((h) => h.addressPort === key)) {
        const host = this.#createHost(ep, key);
        next.push(host);
        placement.set(host, ep.placement);
      }
    }
    for (const gone of previous.values()) void gone.pool.close().catch(() => undefined);
    this.#hosts = next;
    this.#placement = placement;
    this.#outlier?.setHosts(next);
    this.#hc?.setHosts(next);
    this.#updateHealthy();
    this.stats.members.set(next.length);
  }

  /** Healthy = not failed by EDS (or DNS), not failing active health checks, not ejected. A new array each time. */
  #updateHealthy(): void {
    if (this.#closed) return;
    const hc = this.#hc;
    const outlier = this.#outlier;
    this.#healthy = this.#hosts.filter((h) => h.healthy && !(hc?.failed(h) ?? false) && !(outlier?.isEjected(h) ?? false));
    this.#set = this.#buildSet();
  }

  /** Balancers carry over by host-list key, so a health change does not reset round robin. */
  #buildSet(): PrioritySet {
    const healthy = new Set(this.#healthy);
    const previous = this.#balancers;
    const kept = new Map<string, LoadBalancer>();
    const c = this.config;
    const set = PrioritySet.build({
      hosts: this.#hosts,
      placement: (h) => this.#placement.get(h) ?? DEFAULT_PLACEMENT,
      isHealthy: (h) => healthy.has(h),
      panicThresholdPercent: c.healthyPanicThreshold,
      localityWeighted: c.localityWeightedLb,
      balancer: (key) => {
        const lb = kept.get(key) ?? previous.get(key) ?? createLoadBalancer(c.lbPolicy, c.leastRequestChoiceCount, c.ringHash);
        kept.set(key, lb);
        return lb;
      },
    });
    this.#balancers = kept;
    return set;
  }

  #createHost(ep: ResolvedEndpoint, addressPort: string): Host {
    const cb = this.config.circuitBreakers;
    const tlsContext = transportSocketFor(this.config, ep);
    const protocol = this.config.protocol;
    const tls = tlsContext ? () => this.options.clientTls(tlsContext, this.config) : null;
    const pool = this.options.poolFactory(`${tlsContext ? 'https' : 'http'}://${addressPort}`, {
      connectTimeoutMs: this.config.connectTimeoutMs,
      maxConnections: cb.maxConnections,
      keepAliveTimeoutMs: Math.min(this.config.idleTimeoutMs, 60_000),
      maxRequestsPerConnection: this.config.maxRequestsPerConnection,
      protocol: protocol.kind,
      http2: protocol.kind === 'http1' ? HTTP2_DEFAULTS : protocol.http2,
      tls,
    });
    const host: Host = {
      address: ep.address,
      port: ep.port,
      addressPort,
      hostname: ep.hostname,
      weight: ep.weight,
      pool,
      tls,
      healthy: ep.healthy,
      active: 0,
      counters: { rqTotal: 0, rqSuccess: 0, rqError: 0, rqTimeout: 0, cxTotal: 0, cxConnectFail: 0 },
      outlier: null,
    };
    pool.on('connect', (_origin: unknown, targets: unknown[] | undefined) => {
      this.#hadTraffic = true;
      host.counters.cxTotal++;
      this.stats.cxTotal.inc();
      (targets?.[0] instanceof Http2Pool ? this.stats.cxHttp2Total : this.stats.cxHttp1Total).inc();
      if (tlsContext) this.stats.sslHandshake.inc();
    });
    pool.on('connectionError', (_origin: unknown, _targets: unknown, err: NodeJS.ErrnoException | undefined) => {
      host.counters.cxConnectFail++;
      this.stats.cxConnectFail.inc();
      if (tlsContext && err && !CONNECT_REFUSALS.has(err.code ?? '')) this.stats.sslConnectionError.inc();
    });
    return host;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
    this.#hc?.stop();
    this.#outlier?.stop();
    const hosts = this.#hosts;
    this.#hosts = [];
    this.#healthy = [];
    await Promise.all(hosts.map((h) => h.pool.close().catch(() => undefined)));
  }

  /** Closes at once, failing what is in flight; for shutdown after the drain period. */
  async destroy(): Promise<void> {
    this.#closed = true;
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
    this.#hc?.stop();
    this.#outlier?.stop();
    await Promise.all(this.#hosts.map((h) => h.pool.destroy().catch(() => undefined)));
  }
}

/** Socket errors that happen before TLS starts: not TLS failures. */
const CONNECT_REFUSALS = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']);

/**
 * The endpoint's TLS: the first transport_socket_matches entry whose every key the endpoint's
 * `envoy.transport_socket_match` metadata has with that value, else the cluster's transport_socket.
 */
function transportSocketFor(cluster: Cluster, ep: ResolvedEndpoint): UpstreamTlsContext | null {
  for (const m of cluster.transportSocketMatches) {
    let all = true;
    for (const [k, v] of m.match) if (ep.transportSocketMatch.get(k) !== v) all = false;
    if (all) return m.tls;
  }
  return cluster.tls;
}

