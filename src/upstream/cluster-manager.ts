import { isIP } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { ConnectionOptions } from 'node:tls';
import type { Cluster, ClusterLoadAssignment, LbEndpoint } from '../config/model';
import { HTTP2_DEFAULTS } from '../config/decode/http2';
import type { UpstreamTlsContext } from '../config/transport-model';
import type { Logger } from '../log/logger';
import type { ClusterStats, StatsScopes } from '../stats/scopes';
import { Http2Pool } from './h2-pool';
import { HealthChecker } from './health';
import { type Host, formatAddressPort } from './host';
import { type HashKey, type LoadBalancer, createLoadBalancer } from './load-balancer';
import { OutlierDetector } from './outlier/detector';
import { inPanic } from './panic';
import { type PoolFactory, defaultPoolFactory } from './pool-factory';
import { type ResolvedEndpoint, type Resolver, literalEndpoints, resolveEndpoints, systemResolver } from './resolve';

export type { PoolFactory, PoolOptions } from './pool-factory';

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
  readonly #lb: LoadBalancer;
  /** Active health checking, when the cluster configures it. */
  readonly #hc: HealthChecker | null;
  /** Outlier detection (passive health checking), when the cluster configures it. */
  readonly #outlier: OutlierDetector | null;
  /** Too few healthy hosts: balance over all of them (Envoy's panic mode). */
  #panic = false;
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
    this.#lb = createLoadBalancer(config.lbPolicy, config.leastRequestChoiceCount, config.ringHash);
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
   * The host for the next request: among the healthy ones, or in panic mode among all; null
   * when there is none. `hashKey` is the request's hash (route hash_policy) for RING_HASH;
   * other balancers ignore it. `attempt`: see LoadBalancer.pick.
   */
  pick(hashKey?: HashKey, attempt = 0): Host | null {
    if (this.#panic) {
      this.stats.lbHealthyPanic.inc();
      return this.#lb.pick(this.#hosts, hashKey, attempt);
    }
    return this.#lb.pick(this.#healthy, hashKey, attempt);
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
    this.#panic = inPanic(this.#healthy.length, this.#hosts.length, this.config.healthyPanicThreshold);
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

/** Owns every cluster; a config update keeps the clusters whose definition did not change. */
export class ClusterManager {
  readonly #clusters = new Map<string, UpstreamCluster>();
  /** EDS assignments by service name, kept so a recreated cluster gets its endpoints back. */
  readonly #assignments = new Map<string, ClusterLoadAssignment>();
  readonly #hostClusters = new Map<string, UpstreamCluster>();
  /** Replacements still warming, by name; the cluster they replace serves until they are ready. */
  readonly #warming = new Map<string, UpstreamCluster>();
  readonly #options: Required<ClusterManagerOptions>;

  constructor(options: ClusterManagerOptions) {
    this.#options = { ...options, poolFactory: options.poolFactory ?? defaultPoolFactory, resolver: options.resolver ?? systemResolver, clientTls: options.clientTls ?? noClientTls };
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
    // A newer update supersedes any replacement still warming.
    for (const [name, pending] of this.#warming) {
      this.#warming.delete(name);
      void pending.close();
    }
    for (const config of clusters) {
      const existing = this.#clusters.get(config.name);
      if (existing && isDeepStrictEqual(existing.config, config)) continue;
      const created = new UpstreamCluster(config, this.#options);
      const assignment = config.type === 'EDS' ? this.#assignments.get(config.edsServiceName ?? config.name) : undefined;
      const ready = Promise.all([created.ready, assignment ? created.setEndpoints(assignment.endpoints) : undefined]);
      if (!existing) {
        this.#clusters.set(config.name, created);
        warming.push(ready.then(() => undefined));
        continue;
      }
      // Envoy's cluster warming: requests keep going to the cluster being replaced (a changed
      // health-checked or DNS cluster has no usable host until its first check or resolution).
      this.#warming.set(config.name, created);
      warming.push(ready.then(() => {
        if (this.#warming.get(config.name) !== created) return; // superseded (and closed) meanwhile
        this.#warming.delete(config.name);
        this.#clusters.set(config.name, created);
        void existing.close();
      }));
    }
    await Promise.all(warming);
  }

  /**
   * The pool behind a mirror policy's `host` URL (APISIX's form): a cluster the config never
   * named, made on first use and kept until the manager closes.
   */
  hostCluster(url: string, host: string, port: number): UpstreamCluster {
    let c = this.#hostClusters.get(url);
    if (!c) {
      const ip = isIP(host) !== 0;
      c = new UpstreamCluster({
        name: `host:${url}`,
        type: ip ? 'STATIC' : 'STRICT_DNS',
        connectTimeoutMs: 5000,
        lbPolicy: 'ROUND_ROBIN',
        leastRequestChoiceCount: 2,
        loadAssignment: { clusterName: url, endpoints: [{ address: { host, port }, hostname: host, weight: 1, priority: 0, healthStatus: 'UNKNOWN', transportSocketMatch: new Map() }] },
        edsServiceName: null,
        dnsRefreshRateMs: 5000,
        dnsLookupFamily: 'V4_PREFERRED',
        protocol: { kind: 'http1' },
        tls: null,
        transportSocketMatches: [],
        maxRequestsPerConnection: 0,
        idleTimeoutMs: 3_600_000,
        circuitBreakers: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
        mirrorPolicies: [],
        ringHash: null,
        healthCheck: null,
        outlierDetection: null,
        healthyPanicThreshold: 50,
      }, this.#options);
      this.#hostClusters.set(url, c);
    }
    return c;
  }

  /** EDS: endpoints for the clusters whose service name this assignment carries. */
  setLoadAssignment(cla: ClusterLoadAssignment): void {
    this.#assignments.set(cla.clusterName, cla);
    for (const c of [...this.#clusters.values(), ...this.#warming.values()]) {
      if (c.config.type === 'EDS' && (c.config.edsServiceName ?? c.config.name) === cla.clusterName) void c.setEndpoints(cla.endpoints);
    }
  }

  async close(): Promise<void> {
    const all = [...this.all(), ...this.#hostClusters.values(), ...this.#warming.values()];
    this.#warming.clear();
    this.#clusters.clear();
    this.#hostClusters.clear();
    await Promise.all(all.map((c) => c.destroy()));
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

/** Without a TLS factory (tests), Envoy's defaults as far as Node has them: no verification, no SNI. */
function noClientTls(): ConnectionOptions {
  return { rejectUnauthorized: false };
}
