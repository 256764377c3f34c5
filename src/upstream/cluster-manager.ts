import { isIP } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { ConnectionOptions } from 'node:tls';
import type { Cluster, ClusterLoadAssignment } from '../config/model';
import { DEFAULT_PLACEMENT } from '../config/lb-model';
import { defaultPoolFactory } from './pool-factory';
import { systemResolver } from './resolve';
import { type ClusterManagerOptions, UpstreamCluster } from './upstream-cluster';

export type { PoolFactory, PoolOptions } from './pool-factory';
export { type ClientTlsFactory, type ClusterManagerOptions, type HostAvailability, UpstreamCluster } from './upstream-cluster';

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
        loadAssignment: { clusterName: url, endpoints: [{ address: { host, port }, hostname: host, weight: 1, priority: 0, placement: DEFAULT_PLACEMENT, healthStatus: 'UNKNOWN', transportSocketMatch: new Map() }] },
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
        localityWeightedLb: false,
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

/** Without a TLS factory (tests), Envoy's defaults as far as Node has them: no verification, no SNI. */
function noClientTls(): ConnectionOptions {
  return { rejectUnauthorized: false };
}
