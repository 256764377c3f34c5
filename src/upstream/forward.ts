import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { HeaderMap } from '../http/headers';
import type { UpstreamCluster } from './cluster-manager';
import type { Host } from './host';

/** How the primary exchange ended, for the connection manager to answer or log. */
export type PrimaryFailure = 'connect_failure' | 'reset' | 'timeout' | 'protocol_error' | 'downstream_reset';

/** What the connection manager hands the forwarder for one primary request. */
export interface PrimaryForward {
  readonly cluster: UpstreamCluster;
  readonly host: Host;
  readonly method: string;
  readonly path: string;
  readonly headers: HeaderMap;
  readonly body: Readable | null;
  /** Envoy's route timeout (0: none), counted from the end of the downstream request. */
  readonly timeoutMs: number;
  /** Edits the upstream's response headers before they are written (hop-by-hop, route edits…). */
  readonly responseHeaders: (status: number, headers: HeaderMap) => HeaderMap;
  /** Called when the exchange fails before any response byte reached the client. */
  readonly localReply: (failure: PrimaryFailure) => void;
  /** Called once, however the exchange ends. */
  readonly done: (status: number) => void;
  /**
   * Sync-mode shadows: the response is held until this settles (it is bounded by the policies'
   * sync_timeout), then sent with the headers it yields added.
   */
  readonly syncWait: Promise<Record<string, string>> | null;
}

/** A response waiting for sync shadows before it may go to the client. */
interface HeldResponse {
  readonly status: number;
  readonly headers: HeaderMap;
  readonly chunks: Buffer[];
  ended: boolean;
}

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);

class PrimaryAbort extends Error {
  constructor(readonly failure: PrimaryFailure) {
    super(`primary aborted: ${failure}`);
  }
}

/**
 * Streams one request to the primary upstream and its response back to the client, with
 * back-pressure both ways, Envoy's route timeout, and a local reply when nothing was sent yet.
 */
export class PrimaryExchange implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | null = null;
  #timer: NodeJS.Timeout | null = null;
  #status = 0;
  #finished = false;
  #held: HeldResponse | null = null;
  readonly #started = performance.now();

  constructor(
    private readonly fwd: PrimaryForward,
    private readonly res: ServerResponse,
  ) {}

  start(): void {
    const { fwd } = this;
    fwd.host.active++;
    fwd.host.counters.rqTotal++;
    fwd.cluster.active++;
    fwd.cluster.stats.rqTotal.inc();
    fwd.cluster.stats.rqActive.inc();
    fwd.host.pool.dispatch(
      { path: fwd.path, method: fwd.method, headers: fwd.headers as Record<string, string | string[]>, body: fwd.body, blocking: false },
      this,
    );
  }

  /** The downstream request is complete: the route timeout starts now, as in Envoy. */
  requestComplete(): void {
    if (this.fwd.timeoutMs > 0 && !this.#finished) {
      this.#timer = setTimeout(() => this.#abort(new PrimaryAbort('timeout')), this.fwd.timeoutMs);
    }
  }

  /** The client went away: reset the upstream request too. */
  downstreamReset(): void {
    this.#abort(new PrimaryAbort('downstream_reset'));
  }

  // implements Dispatcher.DispatchHandler
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#finished) controller.abort(new PrimaryAbort('downstream_reset'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[]>): void {
    if (statusCode < 200 || this.#finished) return;
    this.#status = statusCode;
    const out = this.fwd.responseHeaders(statusCode, headers);
    out['x-envoy-upstream-service-time'] ??= String(Math.round(performance.now() - this.#started));
    this.res.on('drain', () => controller.resume());
    if (this.fwd.syncWait === null) {
      this.res.writeHead(statusCode, out as Record<string, string | string[]>);
      return;
    }
    // Hold the response (and stop reading it) until the sync shadows are done.
    const held: HeldResponse = { status: statusCode, headers: out, chunks: [], ended: false };
    this.#held = held;
    controller.pause();
    void this.fwd.syncWait.then((added) => {
      if (this.#finished) return;
      this.#held = null;
      this.res.writeHead(held.status, { ...held.headers, ...added } as Record<string, string | string[]>);
      for (const c of held.chunks) this.res.write(c);
      if (held.ended) this.#complete();
      else controller.resume();
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#finished) return;
    if (this.#held !== null) {
      this.#held.chunks.push(chunk);
      return;
    }
    if (!this.res.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    if (this.#finished) return;
    if (this.#held !== null) {
      this.#held.ended = true;
      return;
    }
    this.#complete();
  }

  #complete(): void {
    this.res.end();
    this.#finish();
    this.fwd.cluster.stats.response(this.#status);
    this.fwd.host.counters[this.#status >= 500 ? 'rqError' : 'rqSuccess']++;
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#finished) return;
    this.#fail(err instanceof PrimaryAbort ? err.failure : classify(err));
  }

  #abort(reason: PrimaryAbort): void {
    if (this.#finished) return;
    this.#controller?.abort(reason);
    this.fwd.body?.destroy();
    this.#fail(reason.failure);
  }

  #fail(failure: PrimaryFailure): void {
    const { cluster, host } = this.fwd;
    host.counters.rqError++;
    if (failure === 'timeout') {
      cluster.stats.rqTimeout.inc();
      host.counters.rqTimeout++;
    } else if (failure !== 'connect_failure') {
      cluster.stats.rqReset.inc();
    }
    this.#finish();
    if (failure === 'downstream_reset') return;
    if (!this.res.headersSent) this.fwd.localReply(failure);
    else this.res.destroy(); // The client already has part of a response: reset it, as Envoy does.
  }

  #finish(): void {
    this.#finished = true;
    if (this.#timer) clearTimeout(this.#timer);
    const { cluster, host } = this.fwd;
    host.active--;
    cluster.active--;
    cluster.stats.rqActive.dec();
    cluster.stats.rqTime.observe(performance.now() - this.#started);
    this.fwd.done(this.#status);
  }
}

function classify(err: Error): PrimaryFailure {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CONNECT_FAILURES.has(code)) return 'connect_failure';
  if (code.startsWith('HPE_')) return 'protocol_error';
  return 'reset';
}
