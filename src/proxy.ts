import * as os from 'node:os';
import { staticConfigDump } from './admin/config-dump';
import { AdminServer, type ServerState } from './admin/server';
import { ConfigError } from './config/errors';
import { type LoadedBootstrap, loadBootstrapFile } from './config/load';
import type { Bootstrap } from './config/model';
import { ListenerManager } from './listener/listener-manager';
import { type Logger, createLogger } from './log/logger';
import { LayeredRuntime } from './runtime/runtime';
import { Mirror } from './shadow/mirror';
import { DEFAULT_SHADOW_LIMITS, PooledShadowWriter, type ShadowLimits } from './shadow/writer';
import { compileListeners } from './snapshot/compile';
import { StatsRegistry } from './stats/registry';
import { StatsScopes } from './stats/scopes';
import { ClusterManager, type PoolFactory } from './upstream/cluster-manager';
import type { Resolver } from './upstream/resolve';
import { version } from './version';

export interface ProxyOptions {
  readonly loaded: LoadedBootstrap;
  readonly logger?: Logger;
  readonly poolFactory?: PoolFactory;
  readonly resolver?: Resolver;
  readonly shadowLimits?: Partial<ShadowLimits>;
  /** How long removed listeners and a stopping proxy wait for in-flight requests. */
  readonly drainTimeoutMs?: number;
  readonly commandLine?: Readonly<Record<string, unknown>>;
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
  #admin: AdminServer | null = null;
  #loaded: LoadedBootstrap;
  #loadedAt = new Date();
  #state: ServerState = 'INITIALIZING';
  readonly #startedAt = new Date();
  #onQuit: () => void = () => undefined;

  private constructor(private readonly options: ProxyOptions) {
    this.#loaded = options.loaded;
    this.logger = options.logger ?? createLogger();
    this.runtime = new LayeredRuntime(options.loaded.bootstrap.runtime);
    this.clusters = new ClusterManager({ stats: this.scopes, logger: this.logger, poolFactory: options.poolFactory, resolver: options.resolver });
    this.listeners = new ListenerManager(this.logger, options.drainTimeoutMs ?? 5000);
    this.shadowWriter = new PooledShadowWriter({ ...DEFAULT_SHADOW_LIMITS, ...options.shadowLimits });
    this.mirror = new Mirror(this.clusters, this.shadowWriter, this.runtime, this.scopes);
  }

  static async start(options: ProxyOptions): Promise<Proxy> {
    const proxy = new Proxy(options);
    try {
      await proxy.#apply(options.loaded.bootstrap);
      const admin = options.loaded.bootstrap.admin;
      if (admin) {
        proxy.#admin = new AdminServer(proxy.#adminSources(), proxy.logger);
        const bound = await proxy.#admin.listen(admin.address);
        proxy.logger.info({ address: bound }, 'admin listening');
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
      this.runtime.setStaticLayer(loaded.bootstrap.runtime);
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
    if (b.dynamicResources) {
      throw new ConfigError([{ path: 'dynamic_resources', message: 'xDS (dynamic_resources) is not supported yet; use static_resources' }]);
    }
    await this.clusters.update(b.clusters);
    const deps = { clusters: this.clusters, mirror: this.mirror, stats: this.scopes, logger: this.logger, hostname: os.hostname() };
    await this.listeners.apply(compileListeners(b.listeners, this.runtime, deps));
  }

  /** Drains: stop accepting, let in-flight requests finish (up to the drain timeout), close pools. */
  async stop(): Promise<void> {
    this.#state = 'DRAINING';
    await this.listeners.close();
    await this.#admin?.close();
    await this.clusters.close();
  }

  #adminSources(): ConstructorParameters<typeof AdminServer>[0] {
    return {
      stats: this.stats,
      runtime: this.runtime,
      clusters: this.clusters,
      listeners: this.listeners,
      node: this.#loaded.bootstrap.node,
      startedAt: this.#startedAt,
      version,
      commandLine: this.options.commandLine ?? {},
      state: () => this.#state,
      configDump: () => staticConfigDump(this.#loaded.message, this.#loadedAt),
      clustersVersion: () => 'static',
      quit: () => this.#onQuit(),
    };
  }
}
