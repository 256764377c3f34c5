import cluster from 'node:cluster';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Listener } from '../config/model';
import type { ConnectionManager } from '../http/connection-manager';
import type { Logger } from '../log/logger';

/** A listener as the manager runs it: its config and the connection manager that serves it. */
export interface ListenerSpec {
  readonly listener: Listener;
  readonly connectionManager: ConnectionManager;
}

interface RunningListener {
  spec: ListenerSpec;
  readonly server: http.Server;
  readonly address: AddressInfo;
}

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';
// Envoy's request_timeout / request_headers_timeout reply.
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\ncontent-length: 15\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nrequest timeout';
const HEADERS_TOO_LARGE = 'HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';
const FORBIDDEN = 'HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';
const NOT_FOUND = 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';

/**
 * One node:http server per listener. An update swaps the connection manager of a listener whose
 * address is unchanged (new requests see the new routes, in-flight ones finish on theirs), opens
 * new listeners, and drains removed ones.
 */
export class ListenerManager {
  readonly #running = new Map<string, RunningListener>();
  /** Sockets bound ahead of the update that will serve on them, by listener name. */
  readonly #reserved = new Map<string, { readonly address: Listener['address']; readonly socket: net.Server }>();

  constructor(
    private readonly logger: Logger,
    private readonly drainTimeoutMs = 5000,
    /** Counts a listener that could not be created (Envoy's listener_manager.listener_create_failure). */
    private readonly onCreateFailure: () => void = () => undefined,
  ) {}

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
        this.onCreateFailure();
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
    const server = http.createServer({ keepAliveTimeout: 60_000, noDelay: true, ...serverTimeouts(spec.listener) });
    const entry: RunningListener = { spec, server, address: { address: '', family: '', port: 0 } };
    server.on('request', (req, res) => entry.spec.connectionManager.handle(req, res));
    server.on('connection', (socket: Socket) => {
      const stats = entry.spec.connectionManager.stats;
      stats.cxTotal.inc();
      stats.cxActive.inc();
      socket.once('close', () => stats.cxActive.dec());
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed HTTP gets a 4xx and the connection is closed; the process carries on.
      const stats = entry.spec.connectionManager.stats;
      // Only what the parser refused is a protocol error: not a client that resets, nor the
      // truncated body of a connection we already answered and closed (a 408).
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') stats.rqTimeout.inc();
      else if (err.code?.startsWith('HPE_') && socket.writable) stats.cxProtocolError.inc();
      // Never write a reply into a response that has already started (as Node's own handler).
      const inFlight = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
      if (socket.writable && err.code !== 'ECONNRESET' && !inFlight?.headersSent) {
        socket.end(err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? REQUEST_TIMEOUT : BAD_REQUEST);
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
  const { requestTimeoutMs, requestHeadersTimeoutMs } = l.hcm;
  const headersTimeout = requestHeadersTimeoutMs || Math.min(60_000, requestTimeoutMs || 60_000);
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
}

function sameAddress(a: Listener, b: Listener): boolean {
  return a.address.host === b.address.host && a.address.port === b.address.port;
}
