import cluster from 'node:cluster';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { FilterChain, Listener } from '../config/model';
import type { ConnectionManager } from '../http/connection-manager';
import type { Logger } from '../log/logger';
import type { Runtime } from '../runtime/runtime';
import type { StatsScopes } from '../stats/scopes';
import { GlobalConnectionLimit, listenerConnectionLimit } from './connection-limit';
import { DownstreamConnection } from './downstream-connection';
import { BAD_REQUEST, FORBIDDEN, HEADERS_TOO_LARGE, HEADER_TIMEOUT, NOT_FOUND, REQUEST_TIMEOUT, STREAM_TIMEOUT } from './raw-replies';

/** A listener as the manager runs it: its config and the connection manager that serves it. */
export interface ListenerSpec {
  readonly listener: Listener;
  /** One per filter chain, in the listener's order. */
  readonly chains: readonly ChainSpec[];
  readonly defaultChain: ChainSpec | null;
}

/** A filter chain as the manager runs it. */
export interface ChainSpec {
  readonly chain: FilterChain;
  readonly connectionManager: ConnectionManager;
}

interface RunningListener {
  spec: ListenerSpec;
  readonly server: http.Server;
  readonly address: AddressInfo;
  /** Connections open on this listener, for its runtime connection limit. */
  connections: number;
}

/** What the manager needs beyond the listeners themselves. */
export interface ListenerManagerOptions {
  /** Where the per-listener connection limit is read (Envoy's runtime key); none without it. */
  readonly runtime?: Runtime;
  /** For the `listener.<prefix>.*` counters of refused connections. */
  readonly stats?: StatsScopes;
  /** Counts a listener that could not be created (Envoy's listener_manager.listener_create_failure). */
  readonly onCreateFailure?: () => void;
}

const connectionOf = new WeakMap<Socket, DownstreamConnection>();

/**
 * One node:http server per listener. An update swaps the connection manager of a listener whose
 * address is unchanged (new requests see the new routes, in-flight ones finish on theirs), opens
 * new listeners, and drains removed ones.
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
          applyTimeouts(running.server, spec.listener);
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
    // Host is checked (and its absence answered and counted) by request-validation.ts, not by Node.
    // keepAliveTimeout 0: the connection's idle timer is ours (Envoy's idle_timeout, 1 h by default).
    const server = http.createServer({ keepAliveTimeout: 0, noDelay: true, requireHostHeader: false, ...serverTimeouts(spec.listener), maxHeaderSize: maxHeaderBytes(spec.listener) });
    server.maxHeadersCount = headersCountSeen(spec.listener);
    const entry: RunningListener = { spec, server, address: { address: '', family: '', port: 0 }, connections: 0 };
    const settings = (): { hcm: FilterChain['hcm']; stats: ConnectionManager['stats'] } => ({ hcm: firstChain(entry.spec).chain.hcm, stats: firstChain(entry.spec).connectionManager.stats });
    server.on('request', (req, res) => {
      const conn = connectionOf.get(req.socket);
      if (conn && !conn.onRequest(req, res)) return;
      firstChain(entry.spec).connectionManager.handle(req, res);
    });
    server.on('connection', (socket: Socket) => {
      if (!this.#admit(entry, socket)) return;
      const stats = firstChain(entry.spec).connectionManager.stats;
      stats.cxTotal.inc();
      stats.cxActive.inc();
      socket.once('close', () => stats.cxActive.dec());
      connectionOf.set(socket, new DownstreamConnection(socket, settings));
    });
    // A listener here means Node leaves the timed-out socket to us.
    server.on('timeout', (socket: Socket) => {
      const conn = connectionOf.get(socket);
      if (conn) conn.onTimeout();
      else socket.destroy();
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed HTTP gets a 4xx and the connection is closed; the process carries on.
      const stats = firstChain(entry.spec).connectionManager.stats;
      // Only what the parser refused is a protocol error: not a client that resets, nor the
      // truncated body of a connection we already answered and closed (a 408).
      const inFlight = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
      let timeoutReply = REQUEST_TIMEOUT;
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        const which = requestTimeoutKind(entry.spec.listener, inFlight != null);
        (which === 'request' ? stats.rqTimeout : which === 'headers' ? stats.rqHeaderTimeout : stats.rqIdleTimeout).inc();
        timeoutReply = which === 'request' ? REQUEST_TIMEOUT : which === 'headers' ? HEADER_TIMEOUT : STREAM_TIMEOUT;
      } else if (err.code?.startsWith('HPE_') && socket.writable) stats.cxProtocolError.inc();
      // Never write a reply into a response that has already started (as Node's own handler).
      if (socket.writable && err.code !== 'ECONNRESET' && !inFlight?.headersSent) {
        socket.end(err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? timeoutReply : BAD_REQUEST);
      } else {
        socket.destroy();
      }
    });
    // Upgrades (WebSocket) are not configured: Envoy answers 403. CONNECT needs a connect matcher: 404.
    server.on('upgrade', (_req, socket: Socket) => socket.end(FORBIDDEN));
    server.on('connect', (_req, socket: Socket) => socket.end(NOT_FOUND));
    const { host, port } = spec.listener.address;
    const held = this.#reserved.get(spec.listener.name);
    this.#reserved.delete(spec.listener.name);
    // The socket bound ahead is handed over to the HTTP server, which then owns (and closes) it.
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
    const { server } = running;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), this.drainTimeoutMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
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

/**
 * Envoy's request_timeout (0: none) is the whole downstream request and request_headers_timeout
 * the headers; Node's defaults would cut long uploads. Node refuses a headersTimeout longer than a
 * non-zero requestTimeout, and checks both only every connectionsCheckingInterval (30 s by
 * default), so that interval is kept near a tenth of the shorter timeout.
 */
function serverTimeouts(l: Listener): { requestTimeout: number; headersTimeout: number; connectionsCheckingInterval: number } {
  const { requestTimeoutMs, requestHeadersTimeoutMs, streamIdleTimeoutMs } = firstHcm(l);
  // Without request_headers_timeout, headers that never finish are the stream idle timeout's
  // (Envoy notes that it may fire while large headers still trickle in), capped at 60 s.
  const headersTimeout = requestHeadersTimeoutMs || Math.min(60_000, requestTimeoutMs || 60_000, streamIdleTimeoutMs || 60_000);
  const shortest = Math.min(headersTimeout, requestTimeoutMs || Infinity);
  return { requestTimeout: requestTimeoutMs, headersTimeout, connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(shortest / 10))) };
}

/** A listener kept across an update takes the new connection manager's timeouts too. */
function applyTimeouts(server: http.Server, l: Listener): void {
  const t = serverTimeouts(l);
  // Order matters: Node checks headersTimeout against requestTimeout on assignment.
  server.requestTimeout = 0;
  server.headersTimeout = t.headersTimeout;
  server.requestTimeout = t.requestTimeout;
  // Read by Node for each new connection's parser (the option has no typed setter).
  (server as http.Server & { maxHeaderSize: number }).maxHeaderSize = maxHeaderBytes(l);
  server.maxHeadersCount = headersCountSeen(l);
}

/** Node's parser refuses headers past this (HPE_HEADER_OVERFLOW → 431): max_request_headers_kb. */
function maxHeaderBytes(l: Listener): number {
  return firstHcm(l).maxRequestHeadersKb * 1024;
}

/** Node silently drops headers past maxHeadersCount: keep one more, so that passing the limit shows. */
function headersCountSeen(l: Listener): number {
  return firstHcm(l).commonHttpProtocolOptions.maxHeadersCount + 1;
}

/** Which of Envoy's timeouts Node's request/headers timer stood for, to count and answer it. */
function requestTimeoutKind(l: Listener, headersComplete: boolean): 'request' | 'headers' | 'stream_idle' {
  if (headersComplete) return 'request';
  const { requestHeadersTimeoutMs, requestTimeoutMs, streamIdleTimeoutMs } = firstHcm(l);
  if (requestHeadersTimeoutMs > 0) return 'headers';
  // Otherwise the shortest of the bounds serverTimeouts() took (60 s being our own cap) fired.
  const request = requestTimeoutMs || Infinity;
  const idle = streamIdleTimeoutMs || Infinity;
  if (request <= idle && request <= 60_000) return 'request';
  return idle <= 60_000 ? 'stream_idle' : 'headers';
}

function sameAddress(a: Listener, b: Listener): boolean {
  return a.address.host === b.address.host && a.address.port === b.address.port;
}

function firstChain(spec: ListenerSpec): ChainSpec {
  return spec.chains[0] ?? spec.defaultChain!;
}

function firstHcm(l: Listener): Listener['filterChains'][number]['hcm'] {
  return (l.filterChains[0] ?? l.defaultFilterChain!).hcm;
}
