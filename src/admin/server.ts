import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeInfo, SocketAddress } from '../config/model';
import type { Logger } from '../log/logger';
import { NoAdminLayerError, type RuntimeEntry } from '../runtime/runtime';
import { RE2_MAX_MEM_PROGRAM_SIZE, compileRe2, expansionBound } from '../util/re2';
import { foreignRequestReason, isStateChanging, ownHostNames } from '../util/request-origin';
import { type CompareSource, compareRoutes } from './compare-routes';
import { type AdminRoute, type Reply, json, requestParams, text } from './route';

/** The stats pages' view: one process's registry, or the workers' aggregated. */
export interface StatsView {
  prometheus(): Promise<string>;
  readonly prometheusContentType: string;
  /** `filter` picks stats by their whole name. */
  text(filter?: (name: string) => boolean): Promise<string>;
  json(): Promise<{ stats: Array<{ name: string; value: number }> }>;
  resetCounters(): void;
}

export interface RuntimeControl {
  entries(): RuntimeEntry[];
  layerNames(): string[];
  /** Throws NoAdminLayerError when the bootstrap's layered_runtime has no admin layer. */
  modify(key: string, value: string): void;
}

export type ServerState = 'LIVE' | 'DRAINING' | 'PRE_INITIALIZING' | 'INITIALIZING';

/** What the admin pages read; the admin server writes only runtime. */
export interface AdminSources {
  readonly stats: StatsView;
  readonly runtime: RuntimeControl;
  /** Envoy's /clusters text and JSON (one process, or summed over workers). */
  clustersText(): Promise<string>;
  clustersJson(): Promise<unknown>;
  listeners(): Promise<ReadonlyArray<{ name: string; address: AddressInfo }>>;
  readonly node: NodeInfo;
  readonly startedAt: Date;
  readonly version: string;
  readonly commandLine: Readonly<Record<string, unknown>>;
  /** With --concurrency: each worker's pid and the downstream requests it served. */
  workers?(): Promise<Array<{ pid: number; downstream_rq_total: number }>>;
  state(): ServerState;
  configDump(): unknown;
  /** Envoy's /certs: the TLS contexts' certificates (summed over workers: the first worker's). */
  certs?(): Promise<unknown>;
  /** POST /quitquitquit. */
  quit(): void;
  /** Response comparison results: with it, the /mirror/compare pages are served. */
  readonly compare?: CompareSource;
}

/** Envoy's admin interface, on its own port (loopback unless the bootstrap says otherwise). */
export class AdminServer {
  readonly #server: http.Server;
  readonly #routes: Map<string, AdminRoute>;
  /** Host names that mean this server, known once bound (state changes need one of them). */
  #ownNames: ReadonlySet<string> = new Set();

  constructor(private readonly src: AdminSources, private readonly logger: Logger) {
    this.#routes = new Map<string, AdminRoute>([
      ['/', { post: false, help: 'this list', handle: () => this.#help() }],
      ['/help', { post: false, help: 'this list', handle: () => this.#help() }],
      ['/ready', { post: false, help: 'LIVE when serving, else 503', handle: () => this.#ready() }],
      ['/server_info', { post: false, help: 'version, state, uptime, node', handle: () => this.#serverInfo() }],
      ['/stats', { post: false, help: 'counters and gauges; ?filter=RE, ?format=json|prometheus', handle: (u) => this.#stats(u) }],
      ['/stats/prometheus', { post: false, help: 'Prometheus exposition', handle: () => this.#prometheus() }],
      ['/config_dump', { post: false, help: 'the config in force, as proto3 JSON', handle: () => json(this.src.configDump()) }],
      ['/certs', { post: false, help: 'TLS certificates in use', handle: async () => json(this.src.certs ? await this.src.certs() : { certificates: [] }) }],
      ['/clusters', { post: false, help: 'clusters and hosts; ?format=json', handle: (u) => this.#clusters(u) }],
      ['/listeners', { post: false, help: 'listeners and addresses; ?format=json', handle: (u) => this.#listeners(u) }],
      ['/runtime', { post: false, help: 'runtime keys and layers', handle: () => this.#runtime() }],
      ['/runtime_modify', { post: true, help: 'POST ?key=value sets admin-layer runtime values', handle: (u, r) => this.#runtimeModify(u, r) }],
      ['/reset_counters', { post: true, help: 'POST: zero every stat', handle: () => this.#resetCounters() }],
      ['/quitquitquit', { post: true, help: 'POST: drain and exit', handle: () => this.#quit() }],
      ...(src.compare ? compareRoutes(src.compare) : []),
    ]);
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
  }

  async listen(address: SocketAddress): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: address.host, port: address.port }, () => resolve());
    });
    this.#ownNames = ownHostNames(address.host);
    return this.#server.address() as AddressInfo;
  }

  address(): AddressInfo | null {
    return (this.#server.address() as AddressInfo | null) ?? null;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const route = this.#routes.get(url.pathname);
    let reply: Reply;
    try {
      if (!route) reply = text(`invalid path. admin commands are:\n${this.#help().body}`, 404);
      // Envoy's wording and status for a state-changing path reached without POST.
      else if (route.post && req.method !== 'POST') reply = text(`Method ${req.method ?? ''} not allowed, POST required.\n`, 405);
      else if ((route.post || route.private === true || isStateChanging(req.method)) && this.#foreign(req) !== null) reply = text(`refused: ${this.#foreign(req)!}\n`, 403);
      else reply = await route.handle(url, req);
    } catch (err) {
      this.logger.error({ err: (err as Error).message, path: url.pathname }, 'admin handler failed');
      reply = text(`${(err as Error).message}\n`, 500);
    }
    res.writeHead(reply.status ?? 200, { ...reply.headers, 'content-type': reply.type ?? 'text/plain', 'cache-control': 'no-cache, max-age=0' });
    res.end(reply.body);
  }

  /** Why a state change must be refused (a page in the operator's browser forging it), or null. */
  #foreign(req: http.IncomingMessage): string | null {
    return foreignRequestReason(req, this.#ownNames, this.address()?.port ?? -1);
  }

  #help(): Reply {
    return text([...this.#routes].filter(([p]) => p !== '/').map(([p, r]) => `  ${p}: ${r.help}`).join('\n') + '\n');
  }

  #ready(): Reply {
    const state = this.src.state();
    return text(`${state}\n`, state === 'LIVE' ? 200 : 503);
  }

  async #serverInfo(): Promise<Reply> {
    const uptime = `${Math.floor((Date.now() - this.src.startedAt.getTime()) / 1000)}s`;
    return json({
      version: this.src.version,
      state: this.src.state(),
      uptime_current_epoch: uptime,
      uptime_all_epochs: uptime,
      command_line_options: this.src.commandLine,
      node: this.src.node,
      ...(this.src.workers ? { workers: await this.src.workers() } : {}),
    });
  }

  async #stats(url: URL): Promise<Reply> {
    const format = url.searchParams.get('format');
    if (format === 'prometheus') return this.#prometheus();
    const filter = statsFilter(url.searchParams.get('filter'));
    if (typeof filter === 'string') return text(`Invalid re2 regex: ${filter}\n`, 400);
    if (format === 'json') {
      const all = await this.src.stats.json();
      return json(filter ? { stats: all.stats.filter((s) => filter(s.name)) } : all);
    }
    return text(await this.src.stats.text(filter));
  }

  async #prometheus(): Promise<Reply> {
    return { type: this.src.stats.prometheusContentType, body: await this.src.stats.prometheus() };
  }

  async #clusters(url: URL): Promise<Reply> {
    if (url.searchParams.get('format') === 'json') return json(await this.src.clustersJson());
    return text(await this.src.clustersText());
  }

  async #listeners(url: URL): Promise<Reply> {
    const all = await this.src.listeners();
    if (url.searchParams.get('format') === 'json') {
      return json({
        listener_statuses: all.map((l) => ({ name: l.name, local_address: { socket_address: { address: l.address.address, port_value: l.address.port } } })),
      });
    }
    return text(all.map((l) => `${l.name}::${formatAddress(l.address)}`).join('\n') + '\n');
  }

  #runtime(): Reply {
    const entries: Record<string, unknown> = {};
    for (const e of this.src.runtime.entries()) {
      entries[e.key] = { layer_values: e.layerValues, final_value: e.finalValue };
    }
    return json({ layers: this.src.runtime.layerNames(), entries });
  }

  async #runtimeModify(url: URL, req: http.IncomingMessage): Promise<Reply> {
    const params = await requestParams(url, req);
    if ([...params.keys()].length === 0) return text('usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n', 400);
    try {
      for (const [k, v] of params) this.src.runtime.modify(k, v);
    } catch (err) {
      if (err instanceof NoAdminLayerError) return text(`${err.message}\n`, 503);
      throw err;
    }
    return text('OK\n');
  }

  #resetCounters(): Reply {
    this.src.stats.resetCounters();
    return text('OK\n');
  }

  #quit(): Reply {
    setImmediate(() => this.src.quit());
    return text('OK\n');
  }
}

/** Bounds the work of compiling a client's filter (see expansionBound): far above any stat-name filter. */
const MAX_FILTER_EXPANSION = 50_000;
/**
 * Longest filter compiled, and most Unicode classes (`\p…`, `\P…`) in one. re2js builds those
 * classes slowly, case-folded ones most (`(?i)\pL` repeated to fill a request line took about
 * 2 s, `(?i)[\pL\pL…]` of 1,000 characters 125 ms, the event loop held), and any web page can
 * send a GET here. Stat names are ASCII: no filter for them needs either.
 */
const MAX_FILTER_LENGTH = 1024;
const MAX_FILTER_UNICODE_CLASSES = 16;

/**
 * Envoy's `/stats?filter=`: an RE2 pattern searched for anywhere in the stat's whole name
 * (anchors make it a full match). The pattern comes from a client, so it is compiled linear-time
 * and no larger than RE2's default memory budget allows. Returns the predicate, undefined for no
 * filter, or why the pattern is refused.
 */
function statsFilter(pattern: string | null): ((name: string) => boolean) | undefined | string {
  if (!pattern) return undefined;
  if (pattern.length > MAX_FILTER_LENGTH) return `the filter is longer than ${MAX_FILTER_LENGTH} characters; simplify it`;
  if (unicodeClasses(pattern) > MAX_FILTER_UNICODE_CLASSES) return `the filter has more than ${MAX_FILTER_UNICODE_CLASSES} Unicode classes (\\p, \\P); simplify it`;
  if (expansionBound(pattern) > MAX_FILTER_EXPANSION) {
    return `the filter may compile to more than ${MAX_FILTER_EXPANSION} instructions (length times counted repetitions); simplify it`;
  }
  const compiled = compileRe2(pattern, { maxProgramSize: RE2_MAX_MEM_PROGRAM_SIZE, limitSource: 'max_mem' });
  if (!compiled.ok) return compiled.error;
  const re = compiled.re;
  return (name) => re.search(name);
}

/** How many `\p`/`\P` escapes a pattern holds (an escaped backslash is not one). */
function unicodeClasses(pattern: string): number {
  let n = 0;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.charCodeAt(i) !== 92 /* '\\' */) continue;
    const next = pattern[++i];
    if (next === 'p' || next === 'P') n++;
  }
  return n;
}

function formatAddress(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
