import * as os from 'node:os';
import type { LogFileLimits } from './access-log/log-file';
import { AccessLogManager } from './access-log/manager';
import { clustersJson, clustersText } from './admin/clusters-text';
import { configDump } from './admin/config-dump';
import { AdminServer, type ServerState } from './admin/server';
import { ConfigError } from './config/errors';
import { listenerHooks, resourceHooks } from './config/hook-refs';
import { type LoadedBootstrap, loadBootstrapFile } from './config/load';
import type { Bootstrap, Cluster, HttpConnectionManager, Listener, RouteConfiguration } from './config/model';
import { ListenerManager } from './listener/listener-manager';
import { type Logger, createLogger } from './log/logger';
import { LayeredRuntime } from './runtime/runtime';
import { CompareHub } from './compare/hub';
import { Mirror } from './shadow/mirror';
import { DEFAULT_SHADOW_LIMITS, PooledShadowWriter, type ShadowLimits } from './shadow/writer';
import { type ExtPolicyCompiler, RouteTable } from './router/route-table';
import { CompiledExtPolicy } from './shadow/ext-policy';
import type { HookDirs } from './shadow/hook-dirs';
import { MirrorResources } from './shadow/resources';
import { compileListeners } from './snapshot/compile';
import { StatsRegistry } from './stats/registry';
import { StatsScopes } from './stats/scopes';
import type { SecretStore } from './tls/secret-store';
import { TlsRuntime } from './tls/tls-runtime';
import { ClusterManager, type PoolFactory } from './upstream/cluster-manager';
import type { Resolver } from './upstream/resolve';
import { version } from './version';
import type { DynamicConfigSink } from './xds/dynamic-config';
import type { DynamicSource, XdsClient } from './xds/xds-client';
import { processCodec } from './util/native-http';

export interface ProxyOptions {
  readonly loaded: LoadedBootstrap;
  readonly logger?: Logger;
  readonly poolFactory?: PoolFactory;
  readonly resolver?: Resolver;
  readonly shadowLimits?: Partial<ShadowLimits>;
  /** How long removed listeners and a stopping proxy wait for in-flight requests. */
  readonly drainTimeoutMs?: number;
  readonly commandLine?: Readonly<Record<string, unknown>>;
  /** How long start() waits for the first xDS config before serving anyway (Envoy: 15 s). */
  readonly initialFetchTimeoutMs?: number;
  /** Where dynamic config comes from; default: an ADS client to the bootstrap's ads_config cluster. */
  readonly dynamicSource?: (bootstrap: Bootstrap, sink: DynamicConfigSink) => DynamicSource;
  /** false: never open the admin port (workers leave it to the supervisor). */
  readonly admin?: boolean;
  /** The directories hook modules may be loaded from (--hooks-dir); default none: no hooks. */
  readonly hookDirs?: HookDirs;
  /** Access log batching: flush interval, flush size, bound on queued bytes. */
  readonly accessLogLimits?: Partial<LogFileLimits>;
}

/** The ADS client for a bootstrap's `dynamic_resources`, reaching the management server through its static cluster. */
function adsClient(b: Bootstrap, sink: DynamicConfigSink, logger: Logger, stats: StatsRegistry, resources: MirrorResources, listeners: ListenerManager,
  secrets: SecretStore): XdsClient {
  // Loaded only for a bootstrap with dynamic_resources: a static proxy never pays for gRPC.
  const { XdsClient } = require('./xds/xds-client') as typeof import('./xds/xds-client');
  const { adsConnection } = require('./xds/ads-target') as typeof import('./xds/ads-target');
  return new XdsClient({
    ...adsConnection(b, secrets), node: b.node, logger, stats, sink, check: (t, v) => resources.checkHooks(resourceHooks(t, v)),
    bindListeners: (ls) => listeners.reserve(ls),
  });
}

async function waitAtMost(p: Promise<void>, ms: number): Promise<void> {
  if (ms === Infinity) return p;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * The composition root: builds stats, runtime, clusters, the shadow writer, listeners and
 * admin from a bootstrap, and swaps in a new bootstrap on reload, keeping the last good one
 * when the new one fails.
 */
export class Proxy {
  readonly stats = new StatsRegistry();
  readonly scopes = new StatsScopes(this.stats);
  readonly runtime: LayeredRuntime;
  readonly clusters: ClusterManager;
  readonly listeners: ListenerManager;
  readonly shadowWriter: PooledShadowWriter;
  readonly mirror: Mirror;
  readonly logger: Logger;
  /** Secrets, TLS contexts and their certificates. */
  readonly tls: TlsRuntime;
  #admin: AdminServer | null = null;
  #loaded: LoadedBootstrap;
  #loadedAt = new Date();
  #state: ServerState = 'INITIALIZING';
  readonly #startedAt = new Date();
  #onQuit: () => void = () => undefined;
  #xds: DynamicSource | null = null;
  #dynamicClusters: readonly Cluster[] = [];
  #dynamicListeners: readonly Listener[] = [];
  #routeConfigs = new Map<string, RouteConfiguration>();
  readonly mirrorResources: MirrorResources;
  /** Shadow comparison results (/mirror/compare). */
  readonly compare: CompareHub;
  /** The access log files, shared by every listener; SIGUSR1 reopens them. */
  readonly accessLogs: AccessLogManager;

  private constructor(private readonly options: ProxyOptions) {
    this.#loaded = options.loaded;
    this.logger = options.logger ?? createLogger();
    this.runtime = new LayeredRuntime(options.loaded.bootstrap.runtime, {
      onDiskErrors: (layer, errors) => this.logger.warn({ layer, errors: errors.slice(0, 20), count: errors.length }, 'runtime disk layer: files skipped'),
      onDiskReload: (layer, keys) => this.logger.info({ layer, keys }, 'runtime disk layer reloaded'),
    });
    this.tls = new TlsRuntime(this.scopes);
    this.tls.setStaticSecrets(options.loaded.bootstrap.secrets);
    this.clusters = new ClusterManager({ stats: this.scopes, logger: this.logger, poolFactory: options.poolFactory, resolver: options.resolver, clientTls: this.tls.clientOptions });
    const createFailure = this.stats.listenerCreateFailure.labels({});
    this.listeners = new ListenerManager(this.logger, options.drainTimeoutMs ?? 5000, {
      runtime: this.runtime, stats: this.scopes, onCreateFailure: () => createFailure.inc(), serverTls: this.tls.serverContext,
    });
    // An option given as undefined (a CLI flag left out) keeps the default.
    const limits = options.shadowLimits ?? {};
    this.shadowWriter = new PooledShadowWriter({
      maxInFlightPerCluster: limits.maxInFlightPerCluster ?? DEFAULT_SHADOW_LIMITS.maxInFlightPerCluster,
      maxBufferedBodyBytes: limits.maxBufferedBodyBytes ?? DEFAULT_SHADOW_LIMITS.maxBufferedBodyBytes,
      maxInFlightTotal: limits.maxInFlightTotal ?? DEFAULT_SHADOW_LIMITS.maxInFlightTotal,
      maxTotalBufferedBodyBytes: limits.maxTotalBufferedBodyBytes ?? DEFAULT_SHADOW_LIMITS.maxTotalBufferedBodyBytes,
    });
    this.mirror = new Mirror(this.clusters, this.shadowWriter, this.runtime, this.scopes);
    this.mirrorResources = new MirrorResources(this.logger, options.hookDirs);
    const node = options.loaded.bootstrap.node;
    this.compare = new CompareHub(this.logger, `${node.id || os.hostname()}/${process.pid}`);
    this.accessLogs = new AccessLogManager(this.stats, this.logger, options.accessLogLimits);
  }

  static async start(options: ProxyOptions): Promise<Proxy> {
    const proxy = new Proxy(options);
    const bootstrap = options.loaded.bootstrap;
    const codec = processCodec();
    if (codec.fallbackReason !== null) proxy.logger.warn({ reason: codec.fallbackReason }, 'fast HTTP/1.1 codec unavailable: serving HTTP/1.1 with node:http and undici');
    try {
      // As Envoy's, the admin port opens first: /ready answers 503 until the config is in.
      if (bootstrap.admin && options.admin !== false) {
        proxy.#admin = new AdminServer(proxy.#adminSources(), proxy.logger);
        const bound = await proxy.#admin.listen(bootstrap.admin.address);
        proxy.logger.info({ address: bound }, 'admin listening');
      }
      await proxy.#apply(bootstrap);
      // Like Envoy's init manager: serve once xDS delivered its first config, or after the timeout.
      if (proxy.#xds) {
        const wait = options.initialFetchTimeoutMs ?? bootstrap.dynamicResources?.initialFetchTimeoutMs ?? 15_000;
        if (wait === Infinity) proxy.logger.info('waiting for the first xDS configuration (initial_fetch_timeout: 0)');
        await waitAtMost(proxy.#xds.config.ready, wait);
      }
    } catch (err) {
      await proxy.stop();
      throw err;
    }
    proxy.#state = 'LIVE';
    return proxy;
  }

  get bootstrap(): Bootstrap {
    return this.#loaded.bootstrap;
  }

  get state(): ServerState {
    return this.#state;
  }

  adminAddress(): { address: string; port: number } | null {
    return this.#admin?.address() ?? null;
  }

  /** The bound port of a listener (useful when the config asked for port 0). */
  listenerPort(name: string): number {
    const a = this.listeners.address(name);
    if (!a) throw new Error(`no listener named "${name}"`);
    return a.port;
  }

  /** Called when the admin asks the proxy to quit (/quitquitquit). */
  onQuit(fn: () => void): void {
    this.#onQuit = fn;
  }

  /** Applies a new bootstrap; on failure the previous one stays in force and the error is thrown. */
  async reload(loaded: LoadedBootstrap): Promise<void> {
    const previous = this.#loaded;
    try {
      await this.#apply(loaded.bootstrap);
      this.#loaded = loaded;
      this.#loadedAt = new Date();
      this.runtime.setLayers(loaded.bootstrap.runtime);
      this.logger.info('configuration reloaded');
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'reload failed; keeping the last good configuration');
      await this.#apply(previous.bootstrap).catch(() => undefined);
      throw err;
    }
  }

  /** Reloads from a file; a ConfigError leaves everything as it was. */
  async reloadFile(file: string): Promise<void> {
    await this.reload(loadBootstrapFile(file));
  }

  async #apply(b: Bootstrap): Promise<void> {
    const hookIssues = this.mirrorResources.checkHooks(listenerHooks(b.listeners));
    if (hookIssues.length > 0) throw new ConfigError(hookIssues);
    this.tls.setStaticSecrets(b.secrets);
    await this.clusters.update([...b.clusters, ...this.#dynamicClusters]);
    await this.#applyListeners(b);
    if (b.dynamicResources && !this.#xds) this.#startXds(b);
  }

  async #applyListeners(b: Bootstrap = this.#loaded.bootstrap): Promise<void> {
    this.listeners.setGlobalConnectionLimit(b.overloadManager.maxActiveDownstreamConnections);
    const deps = {
      clusters: this.clusters, mirror: this.mirror, stats: this.scopes, logger: this.logger, hostname: os.hostname(), runtime: this.runtime,
      draining: () => this.#state === 'DRAINING',
      accessLog: { manager: this.accessLogs, runtime: this.runtime },
    };
    const routesFor = (l: Listener, hcm: HttpConnectionManager): (() => RouteTable | null) => {
      if (hcm.routeConfig) {
        const table = new RouteTable(hcm.routeConfig, this.runtime, this.#extCompiler(l, hcm));
        return () => table;
      }
      // RDS: compiled per listener (its mirror filter decides which extended policies apply),
      // lazily, and again whenever the route configuration changes.
      const name = hcm.rdsRouteConfigName ?? '';
      let compiledFrom: RouteConfiguration | null = null;
      let table: RouteTable | null = null;
      return () => {
        const rc = this.#routeConfigs.get(name) ?? null;
        if (rc !== compiledFrom) {
          compiledFrom = rc;
          table = rc ? new RouteTable(rc, this.runtime, this.#extCompiler(l, hcm)) : null;
        }
        return table;
      };
    };
    await this.listeners.apply(compileListeners([...b.listeners, ...this.#dynamicListeners], deps, routesFor));
  }

  /** Starts the dynamic config source (the ADS client by default) and applies what it delivers. */
  #startXds(b: Bootstrap): void {
    let adsSecretNames: ReadonlySet<string> = new Set();
    const sink: DynamicConfigSink = {
      setClusters: async (clusters) => {
        this.#dynamicClusters = clusters;
        await this.clusters.update([...this.#loaded.bootstrap.clusters, ...clusters]);
      },
      setLoadAssignment: (cla) => this.clusters.setLoadAssignment(cla),
      setRoutes: (routes) => {
        this.#routeConfigs = new Map(routes);
      },
      setListeners: async (listeners) => {
        this.#dynamicListeners = listeners;
        await this.#applyListeners();
      },
      // TLS contexts rebuild on their secrets' change: new handshakes take the new certificate,
      // open connections keep theirs.
      setSecrets: (secrets) => {
        const names = new Set(secrets.map((s) => s.name));
        this.tls.store.setDynamic(secrets);
        this.tls.store.removeDynamic([...adsSecretNames].filter((n) => !names.has(n)));
        adsSecretNames = names;
      },
      staticResources: () => ({ listeners: this.#loaded.bootstrap.listeners, clusters: this.#loaded.bootstrap.clusters }),
    };
    const factory = this.options.dynamicSource ?? ((boot, s) => adsClient(boot, s, this.logger, this.stats, this.mirrorResources, this.listeners, this.tls.store));
    this.#xds = factory(b, sink);
    this.#xds.start();
  }

  /** Compiles a listener's extended mirror policies; a policy that cannot run is logged and left out. */
  #extCompiler(l: Listener, hcm: HttpConnectionManager): ExtPolicyCompiler | null {
    const filter = hcm.mirrorFilter;
    if (!filter) return null;
    const deps = {
      clusters: this.clusters, writer: this.shadowWriter, runtime: this.runtime, stats: this.scopes,
      resources: this.mirrorResources, logger: this.logger, maxBufferedBodyBytes: this.shadowWriter.limits.maxBufferedBodyBytes,
      maxInFlightPerCluster: this.shadowWriter.limits.maxInFlightPerCluster, compare: this.compare,
    };
    return {
      filterName: filter.name,
      compile: (policies) => policies.flatMap((p) => {
        try {
          return [new CompiledExtPolicy(p, filter.config, deps)];
        } catch (err) {
          this.logger.error({ listener: l.name, policy: p.name, err: (err as Error).message }, 'mirror policy left out');
          return [];
        }
      }),
    };
  }

  /** The xDS client, when the bootstrap has dynamic_resources. */
  get xds(): DynamicSource | null {
    return this.#xds;
  }

  /** Drains: stop accepting, let in-flight requests finish (up to the drain timeout), close pools. */
  async stop(): Promise<void> {
    this.#state = 'DRAINING';
    this.#xds?.close();
    await this.listeners.close();
    await this.#admin?.close();
    await this.clusters.close();
    await this.mirrorResources.close();
    await this.compare.close();
    this.tls.close();
    // Last: the lines of the requests and shadows that ended while draining are in.
    await this.accessLogs.close();
    this.runtime.close();
  }

  /** SIGUSR1: every access log file is closed and opened again by its path (logrotate). */
  reopenAccessLogs(): void {
    this.accessLogs.reopen();
  }

  #adminSources(): ConstructorParameters<typeof AdminServer>[0] {
    return {
      stats: this.stats,
      runtime: this.runtime,
      clustersText: async () => clustersText(this.clusters.all(), this.#xds?.config.clusterVersion() ?? 'static'),
      clustersJson: async () => clustersJson(this.clusters.all()),
      listeners: async () => this.listeners.listeners(),
      node: this.#loaded.bootstrap.node,
      startedAt: this.#startedAt,
      version,
      commandLine: this.options.commandLine ?? {},
      state: () => this.#state,
      configDump: () => configDump(this.#loaded.message, this.#loadedAt, this.#xds?.config ?? null),
      certs: async () => this.tls.certificates(),
      quit: () => this.#onQuit(),
      compare: {
        report: () => this.compare.registry.report(),
        samples: (policy, endpoint, field) => this.compare.registry.samples(policy, endpoint, field),
        markNoise: (policy, path) => this.compare.registry.markNoise(policy, path),
        unmarkNoise: (policy, path) => this.compare.registry.unmarkNoise(policy, path),
        reset: (policy) => this.compare.registry.reset(policy),
        exportYaml: (policy) => this.compare.registry.exportYaml(policy),
        fleetReport: () => this.compare.fleetReport(),
      },
    };
  }
}
