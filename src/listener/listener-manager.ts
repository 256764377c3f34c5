import cluster from 'node:cluster';
import * as net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Listener } from '../config/model';
import type { Logger } from '../log/logger';
import type { Runtime } from '../runtime/runtime';
import type { StatsScopes } from '../stats/scopes';
import { GlobalConnectionLimit, listenerConnectionLimit } from './connection-limit';
import { SecretStore } from '../tls/secret-store';
import { ServerTlsContext } from '../tls/server-context';
import { ListenerChains, type ServerTlsFactory } from './listener-chains';

import type { ListenerSpec } from './listener-spec';

export type { ChainSpec, ListenerSpec } from './listener-spec';

interface RunningListener {
  spec: ListenerSpec;
  readonly server: net.Server;
  readonly chains: ListenerChains;
  readonly address: AddressInfo;
  /** Connections open on this listener, for its runtime connection limit. */
  connections: number;
  /** Every open connection, so that a drain can end what is left of them. */
  readonly sockets: Set<Socket>;
}

/** What the manager needs beyond the listeners themselves. */
export interface ListenerManagerOptions {
  /** Where the per-listener connection limit is read (Envoy's runtime key); none without it. */
  readonly runtime?: Runtime;
  /** For the `listener.<prefix>.*` counters of refused connections. */
  readonly stats?: StatsScopes;
  /** Counts a listener that could not be created (Envoy's listener_manager.listener_create_failure). */
  readonly onCreateFailure?: () => void;
  /** Builds the TLS of filter chains with a transport socket (by default from files and inline values only, no SDS). */
  readonly serverTls?: ServerTlsFactory;
}

/**
 * One listening socket per listener, its connections handed to filter chains and codecs
 * (listener-chains.ts). An update swaps the connection managers of a listener whose address is
 * unchanged (new requests see the new routes, in-flight ones finish on theirs), opens new
 * listeners, and drains removed ones.
 */
export class ListenerManager {
  readonly #running = new Map<string, RunningListener>();
  /** The overload manager's global downstream connection limit, over every listener. */
  readonly globalConnections = new GlobalConnectionLimit();
  /** Sockets bound ahead of the update that will serve on them, by listener name. */
  readonly #reserved = new Map<string, { readonly address: Listener['address']; readonly socket: net.Server }>();

  constructor(
    private readonly logger: Logger,
    private readonly drainTimeoutMs = 5000,
    private readonly options: ListenerManagerOptions = {},
  ) {}

  /** envoy.resource_monitors.global_downstream_max_connections (null: none); applies to new connections. */
  setGlobalConnectionLimit(max: number | null): void {
    this.globalConnections.max = max;
  }

  /**
   * Binds the sockets of the listeners in `listeners` that are not already open at their address,
   * and keeps them for the update that follows, as Envoy binds a listener's socket when the
   * listener is added (before it warms), so that an update that cannot bind is refused while the
   * old listeners keep serving. Returns why each bind failed; on any failure nothing new stays bound.
   */
  async reserve(listeners: readonly Listener[]): Promise<string[]> {
    // In a --concurrency worker the primary process owns the sockets (node:cluster) and a socket
    // cannot be handed from one server to another: there a bind failure shows when the listener opens.
    if (cluster.isWorker) return [];
    const made: string[] = [];
    const problems: string[] = [];
    for (const l of listeners) {
      const running = this.#running.get(l.name);
      if (running && sameAddress(running.spec.listener, l)) continue;
      const held = this.#reserved.get(l.name);
      if (held && sameEndpoint(held.address, l.address)) continue;
      if (held) this.#release(l.name);
      try {
        this.#reserved.set(l.name, { address: l.address, socket: await bindSocket(l.address) });
        made.push(l.name);
      } catch (err) {
        this.options.onCreateFailure?.();
        const e = err as NodeJS.ErrnoException;
        problems.push(`Listener "${l.name}": cannot bind ${l.address.host}:${l.address.port}: ${e.code ?? e.message}`);
      }
    }
    if (problems.length > 0) for (const name of made) this.#release(name);
    return problems;
  }

  #release(name: string): void {
    const held = this.#reserved.get(name);
    this.#reserved.delete(name);
    held?.socket.close();
  }

  /** The bound address of a listener (its real port when the config asked for port 0). */
  address(name: string): AddressInfo | undefined {
    return this.#running.get(name)?.address;
  }

  names(): string[] {
    return [...this.#running.keys()];
  }

  listeners(): Array<{ name: string; address: AddressInfo; listener: Listener }> {
    return [...this.#running.entries()].map(([name, r]) => ({ name, address: r.address, listener: r.spec.listener }));
  }

  /** Makes the running listeners match `specs`. Rejects (changing nothing new) if a bind fails. */
  apply(specs: readonly ListenerSpec[]): Promise<void> {
    // One update at a time: an xDS push arriving while a reload drains a listener waits its turn,
    // so no listener is opened twice or left running untracked.
    const run = this.#queue.then(() => this.#apply(specs));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #queue: Promise<void> = Promise.resolve();

  async #apply(specs: readonly ListenerSpec[]): Promise<void> {
    const wanted = new Map(specs.map((s) => [s.listener.name, s]));
    // Every socket the update needs is bound before anything changes: a bind failure leaves the
    // running listeners as they were.
    const problems = await this.reserve(specs.map((s) => s.listener));
    if (problems.length > 0) throw new ListenerBindError(problems);
    const started: string[] = [];
    try {
      for (const spec of specs) {
        const running = this.#running.get(spec.listener.name);
        if (running && sameAddress(running.spec.listener, spec.listener)) {
          running.spec = spec;
          running.chains.update(spec);
          continue;
        }
        if (running) await this.#drain(spec.listener.name);
        this.#running.set(spec.listener.name, await this.#open(spec));
        started.push(spec.listener.name);
      }
    } catch (err) {
      for (const name of started) await this.#drain(name);
      throw err;
    }
    for (const name of [...this.#running.keys()]) {
      if (!wanted.has(name)) await this.#drain(name);
    }
    for (const name of [...this.#reserved.keys()]) if (!wanted.has(name)) this.#release(name);
  }

  async #open(spec: ListenerSpec): Promise<RunningListener> {
    // The listener only accepts: its filter chains pick TLS and codec for each connection.
    const server = net.createServer({ noDelay: true, pauseOnConnect: false });
    const stats = this.options.stats?.listener(spec.listener.statPrefix);
    const chains = new ListenerChains(spec, this.options.serverTls ?? standaloneServerTls, (socket) => {
      stats?.noFilterChainMatch.inc();
      entry.spec.connectionLog?.noFilterChain(socket);
    });
    const entry: RunningListener = { spec, server, chains, address: { address: '', family: '', port: 0 }, connections: 0, sockets: new Set() };
    server.on('connection', (socket: Socket) => {
      if (!this.#admit(entry, socket)) return;
      entry.sockets.add(socket);
      socket.once('close', () => entry.sockets.delete(socket));
      entry.spec.connectionLog?.accepted(socket);
      entry.chains.accept(socket);
    });
    const { host, port } = spec.listener.address;
    const held = this.#reserved.get(spec.listener.name);
    this.#reserved.delete(spec.listener.name);
    // The socket bound ahead is handed over to the listening server, which then owns (and closes) it.
    const target = held && sameEndpoint(held.address, spec.listener.address) ? held.socket : { host, port };
    if (held && target !== held.socket) held.socket.close();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(target, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ listener: spec.listener.name, err: err.message }, 'listener error'));
    Object.assign(entry, { address: server.address() as AddressInfo });
    this.logger.info({ listener: spec.listener.name, address: entry.address }, 'listener started');
    return entry;
  }

  /**
   * Envoy's order on accept: the global limit (unless the listener ignores it), then the
   * listener's own runtime limit. A refused connection is closed at once and counted.
   */
  #admit(entry: RunningListener, socket: Socket): boolean {
    const l = entry.spec.listener;
    const counted = !l.ignoreGlobalConnLimit;
    if (counted && !this.globalConnections.tryAcquire()) {
      this.options.stats?.listener(l.statPrefix).globalCxOverflow.inc();
      socket.destroy();
      return false;
    }
    const limit = listenerConnectionLimit(this.options.runtime ?? null, l.name);
    if (limit !== null && entry.connections >= limit) {
      if (counted) this.globalConnections.release();
      this.options.stats?.listener(l.statPrefix).cxOverflow.inc();
      socket.destroy();
      return false;
    }
    entry.connections++;
    socket.once('close', () => {
      entry.connections--;
      if (counted) this.globalConnections.release();
    });
    return true;
  }

  /** Stops accepting, lets in-flight requests finish, then closes what is left. */
  async #drain(name: string): Promise<void> {
    const running = this.#running.get(name);
    if (!running) return;
    this.#running.delete(name);
    const { server, sockets, chains } = running;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    chains.drain();
    const timer = setTimeout(() => {
      for (const s of sockets) s.destroy();
    }, this.drainTimeoutMs);
    timer.unref();
    await stopped;
    await allClosed(sockets);
    clearTimeout(timer);
    chains.close();
    this.logger.info({ listener: name }, 'listener drained');
  }

  async close(): Promise<void> {
    for (const name of [...this.#reserved.keys()]) this.#release(name);
    await Promise.all([...this.#running.keys()].map((n) => this.#drain(n)));
  }
}

/** An update refused because a listener's socket could not be bound; the old listeners stay. */
export class ListenerBindError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ListenerBindError';
  }
}

function bindSocket(address: Listener['address']): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const socket = net.createServer();
    socket.once('error', reject);
    socket.listen({ host: address.host, port: address.port }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function sameEndpoint(a: Listener['address'], b: Listener['address']): boolean {
  return a.host === b.host && a.port === b.port;
}

function sameAddress(a: Listener, b: Listener): boolean {
  return a.address.host === b.address.host && a.address.port === b.address.port;
}

/** Resolves once every socket in the set has closed. */
function allClosed(sockets: Set<Socket>): Promise<void> {
  return Promise.all([...sockets].map((s) => (s.destroyed ? undefined : new Promise<void>((r) => s.once('close', () => r()))))).then(() => undefined);
}

/** Without a factory: TLS contexts on their own secret store (static files and inline values). */
function standaloneServerTls(ctx: Parameters<ServerTlsFactory>[0]): ServerTlsContext {
  return new ServerTlsContext(ctx, { store: new SecretStore() });
}
