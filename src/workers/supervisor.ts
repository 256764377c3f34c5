import cluster, { type Worker } from 'node:cluster';
import * as fs from 'node:fs';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { configDump } from '../admin/config-dump';
import { AdminServer, type ServerState, type StatsView } from '../admin/server';
import { ConfigError } from '../config/errors';
import { listenerHooks, resourceHooks } from '../config/hook-refs';
import { type LoadedBootstrap, loadBootstrapText } from '../config/load';
import { type ResourceTypeUrl, SECRET_TYPE, TYPE_ORDER, isResourceType, isWildcardType, resourceMessageType, resourceName } from '../config/resources';
import type { Logger } from '../log/logger';
import { LayeredRuntime } from '../runtime/runtime';
import { HookDirs } from '../shadow/hook-dirs';
import { MirrorResources } from '../shadow/resources';
import { type MetricsJson, StatsRegistry, renderText, textToJson } from '../stats/registry';
import { version } from '../version';
import type { DiscoveryResponse } from '../xds/ads-stream';
import { adsConnection } from '../xds/ads-target';
import { XdsClient } from '../xds/xds-client';
import { proxyEnv, proxyExecArgv } from './heap-flags';
import { type FromWorker, MARK, type ToWorker, type WorkerProxyOptions, type XdsPush } from './messages';

export interface SupervisorOptions {
  readonly configFile: string;
  readonly workers: number;
  readonly logger: Logger;
  readonly proxy: WorkerProxyOptions;
  readonly commandLine: Readonly<Record<string, unknown>>;
}

type Query = Extract<ToWorker, { t: 'query' }>['what'];

const REPLACE_BACKOFF_MS = 500;
const REPLACE_BACKOFF_MAX_MS = 30_000;
/** A worker that has answered neither ready nor failed by then is killed (and, once serving, replaced). */
const BOOTSTRAP_TIMEOUT_MS = 15_000;

/**
 * The main process of `--concurrency N`: holds the config (the bootstrap file and, under xDS, the
 * one ADS stream), hands every accepted snapshot to N workers that share the listeners, answers
 * the admin port with stats aggregated over the workers, and replaces a worker that dies.
 */
export class Supervisor {
  readonly stats = new StatsRegistry();
  readonly runtime: LayeredRuntime;
  #text: string;
  #loaded: LoadedBootstrap;
  readonly #loadedAt = new Date();
  readonly #startedAt = new Date();
  #xds: XdsClient | null = null;
  /** Loads hook modules to check config the workers will run (the supervisor runs no hooks). */
  readonly #hooks: MirrorResources;
  /** The accepted xDS state, replayed to a worker that starts late. */
  readonly #accepted = new Map<ResourceTypeUrl, { version: string; resources: Map<string, { type_url: string; value: string }> }>();
  #admin: AdminServer | null = null;
  #state: ServerState = 'INITIALIZING';
  #stopping = false;
  #queryId = 0;
  /** Replacement workers that failed in a row (the back-off between tries). */
  #failures = 0;
  readonly #replies = new Map<number, (data: unknown) => void>();

  constructor(private readonly o: SupervisorOptions) {
    this.#hooks = new MirrorResources(o.logger, new HookDirs(o.proxy.hookDirs));
    this.#text = fs.readFileSync(o.configFile, 'utf8');
    this.#loaded = this.#load(this.#text);
    this.runtime = new LayeredRuntime(this.#loaded.bootstrap.runtime);
  }

  async start(): Promise<void> {
    // The admin port first, as Envoy's: /ready answers 503 until the workers serve.
    const admin = this.#loaded.bootstrap.admin;
    if (admin) {
      this.#admin = new AdminServer(this.#adminSources(), this.o.logger);
      await this.#admin.listen(admin.address);
    }
    // The workers are the proxy processes: they get the young generation sized for shadows.
    cluster.setupPrimary({ execArgv: proxyExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.o.workers; i++) ready.push(this.#fork());
    try {
      await Promise.all(ready);
    } catch (err) {
      await this.#admin?.close();
      throw err;
    }
    if (this.#loaded.bootstrap.dynamicResources) this.#startXds();
    cluster.on('exit', (worker, code, signal) => {
      if (this.#stopping) return;
      this.o.logger.error({ worker: worker.id, code, signal }, 'worker died; starting another');
      this.#replace();
    });
    this.#state = 'LIVE';
  }

  /** SIGHUP: validate the file again and hand it to the workers; an invalid file changes nothing. */
  reload(): void {
    const text = fs.readFileSync(this.o.configFile, 'utf8');
    this.#loaded = this.#load(text);
    this.#text = text;
    this.runtime.setLayers(this.#loaded.bootstrap.runtime);
    this.#broadcast({ t: 'reload', text });
  }

  /** Workers load the same hook modules: a file they would refuse is refused here first. */
  #load(text: string): LoadedBootstrap {
    const loaded = loadBootstrapText(text);
    const issues = this.#hooks.checkHooks(listenerHooks(loaded.bootstrap.listeners));
    if (issues.length > 0) throw new ConfigError(issues);
    return loaded;
  }

  /** SIGUSR1: every worker reopens its access log files. */
  reopenAccessLogs(): void {
    for (const w of Object.values(cluster.workers ?? {})) if (w && !w.isDead()) w.process.kill('SIGUSR1');
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#state = 'DRAINING';
    this.#xds?.close();
    const exits = Object.values(cluster.workers ?? {}).map((w) => new Promise<void>((resolve) => {
      if (!w || w.isDead()) return resolve();
      w.once('exit', () => resolve());
      this.#send(w, { t: 'stop' });
    }));
    await Promise.all(exits);
    await this.#admin?.close();
  }

  adminPort(): number | null {
    return this.#admin?.address()?.port ?? null;
  }

  /**
   * Starts a worker in place of a dead one. One that fails to start, or hangs in its bootstrap,
   * is killed by #fork, and its exit brings the next try here, later each time: the supervisor
   * keeps its N workers through a passing fault (a busy machine, a full disk).
   */
  #replace(): void {
    const delayMs = this.#failures === 0 ? 0 : Math.min(REPLACE_BACKOFF_MAX_MS, REPLACE_BACKOFF_MS * 2 ** (this.#failures - 1));
    setTimeout(() => {
      if (this.#stopping) return;
      this.#fork().then(() => {
        this.#failures = 0;
      }, (err: unknown) => {
        this.#failures++;
        this.o.logger.error({ err: (err as Error).message }, 'replacement worker failed');
      });
    }, delayMs).unref();
  }

  #fork(): Promise<void> {
    // Workers read their log level from the environment (they never parse --log-level).
    const worker = cluster.fork({ ...proxyEnv(process.env), SIDEMIRROR_ROLE: 'worker', SIDEMIRROR_LOG_LEVEL: this.o.logger.level });
    worker.on('message', (raw: unknown) => {
      const m = (raw as Record<string, unknown> | null)?.[MARK] as FromWorker | undefined;
      if (m?.t === 'reply') {
        this.#replies.get(m.id)?.(m.data);
        this.#replies.delete(m.id);
      }
    });
    return new Promise<void>((resolve, reject) => {
      // A worker that failed, hangs or dies in its bootstrap never serves: it is gone (killed,
      // so that its exit is the one signal of a lost worker) and the promise settles.
      const fail = (message: string): void => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        if (!worker.isDead()) worker.process.kill('SIGKILL');
        reject(new Error(message));
      };
      const timer = setTimeout(() => fail(`worker ${worker.id} did not start within ${BOOTSTRAP_TIMEOUT_MS} ms`), BOOTSTRAP_TIMEOUT_MS);
      timer.unref();
      const onExit = (code: number | null, signal: string | null): void => fail(`worker ${worker.id} exited during bootstrap (code ${code}, signal ${signal})`);
      const onMessage = (raw: unknown): void => {
        const m = (raw as Record<string, unknown> | null)?.[MARK] as FromWorker | undefined;
        if (!m || (m.t !== 'ready' && m.t !== 'failed')) return;
        if (m.t === 'failed') return fail(`worker ${worker.id}: ${m.message}`);
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        for (const push of this.#replay()) this.#send(worker, push);
        for (const e of this.runtime.entries()) if (e.adminValue !== undefined) this.#send(worker, { t: 'runtime', key: e.key, value: e.adminValue });
        resolve();
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      worker.once('online', () => this.#send(worker, { t: 'bootstrap', text: this.#text, options: this.o.proxy }));
    });
  }

  #startXds(): void {
    const b = this.#loaded.bootstrap;
    // The supervisor validates (and ACKs or NACKs) every response; workers get only accepted ones.
    this.#xds = new XdsClient({
      ...adsConnection(b),
      node: b.node,
      logger: this.o.logger,
      stats: this.stats,
      sink: {
        setClusters: async () => undefined, setLoadAssignment: () => undefined, setRoutes: () => undefined, setListeners: async () => undefined, setSecrets: () => undefined,
        // The workers' static listeners may name ADS secrets: the one stream asks for them.
        staticResources: () => ({ listeners: this.#loaded.bootstrap.listeners, clusters: this.#loaded.bootstrap.clusters }),
      },
      onAccepted: (response) => this.#onAccepted(response),
      check: (t, v) => this.#hooks.checkHooks(resourceHooks(t, v)),
    });
    this.#xds.start();
  }

  #onAccepted(response: DiscoveryResponse): void {
    if (!isResourceType(response.type_url)) return;
    const typeUrl = response.type_url;
    const resources = response.resources.map((r) => ({ type_url: r.type_url, value: Buffer.from(r.value).toString('base64') }));
    const held = this.#accepted.get(typeUrl);
    const map = isWildcardType(typeUrl) || !held ? new Map<string, { type_url: string; value: string }>() : held.resources;
    const type = resourceMessageType(typeUrl);
    for (const [i, r] of response.resources.entries()) {
      map.set(resourceName(typeUrl, type.toObject(type.decode(r.value))), resources[i]!);
    }
    this.#accepted.set(typeUrl, { version: response.version_info, resources: map });
    this.#broadcast({ t: 'xds', typeUrl, version: response.version_info, resources });
  }

  /**
   * The accepted state as one response per type, in make-before-break order, except that
   * secrets come last: a worker keeps only the secrets its clusters and listeners name, so it
   * must know them first (on the live stream SDS follows them anyway, being asked for by name).
   */
  #replay(): XdsPush[] {
    const order: ResourceTypeUrl[] = [...TYPE_ORDER.filter((t) => t !== SECRET_TYPE), SECRET_TYPE];
    return order.filter((t) => this.#accepted.has(t)).map((t) => {
      const held = this.#accepted.get(t)!;
      return { t: 'xds', typeUrl: t, version: held.version, resources: [...held.resources.values()] };
    });
  }

  #send(worker: Worker, m: ToWorker): void {
    if (worker.isConnected()) worker.send({ [MARK]: m });
  }

  #broadcast(m: ToWorker): void {
    for (const w of Object.values(cluster.workers ?? {})) if (w) this.#send(w, m);
  }

  /** Asks every live worker; answers that do not come within a second are left out. */
  async #query(what: Query): Promise<unknown[]> {
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => Boolean(w && w.isConnected()));
    return (await Promise.all(workers.map((w) => new Promise<unknown>((resolve) => {
      const id = ++this.#queryId;
      const timer = setTimeout(() => {
        this.#replies.delete(id);
        resolve(undefined);
      }, 1000);
      this.#replies.set(id, (data) => {
        clearTimeout(timer);
        resolve(data);
      });
      this.#send(w, { t: 'query', id, what });
    })))).filter((d) => d !== undefined);
  }

  #aggregatedStats(): StatsView {
    const aggregate = async (): Promise<Registry> => {
      const perWorker = (await this.#query('metrics')) as MetricsJson[];
      return AggregatorRegistry.aggregate([...perWorker, await this.stats.registry.getMetricsAsJSON()]);
    };
    return {
      prometheus: async () => (await aggregate()).metrics(),
      prometheusContentType: this.stats.prometheusContentType,
      text: async (filter) => renderText(await (await aggregate()).getMetricsAsJSON(), filter),
      json: async () => textToJson(renderText(await (await aggregate()).getMetricsAsJSON())),
      resetCounters: () => {
        this.stats.resetCounters();
        void this.#query('reset_counters');
      },
    };
  }

  #adminSources(): ConstructorParameters<typeof AdminServer>[0] {
    const first = async <T>(what: Query, fallback: T): Promise<T> => ((await this.#query(what))[0] as T | undefined) ?? fallback;
    return {
      stats: this.#aggregatedStats(),
      runtime: {
        entries: () => this.runtime.entries(),
        layerNames: () => this.runtime.layerNames(),
        modify: (key, value) => {
          this.runtime.modify(key, value);
          this.#broadcast({ t: 'runtime', key, value });
        },
      },
      // Host counters are per worker; /clusters shows the first worker's (stats are summed).
      clustersText: () => first('clusters_text', ''),
      clustersJson: () => first('clusters_json', {}),
      listeners: () => first('listeners', []),
      node: this.#loaded.bootstrap.node,
      startedAt: this.#startedAt,
      version,
      commandLine: { ...this.o.commandLine, concurrency: this.o.workers },
      workers: async () => (await this.#query('summary')) as Array<{ pid: number; downstream_rq_total: number }>,
      state: () => this.#state,
      configDump: () => configDump(this.#loaded.message, this.#loadedAt, this.#xds?.config ?? null),
      quit: () => process.kill(process.pid, 'SIGTERM'),
    };
  }
}
