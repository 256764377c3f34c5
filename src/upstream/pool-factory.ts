import { EventEmitter } from 'node:events';
import * as tls from 'node:tls';
import type { Dispatcher } from 'undici';
import type { Http2Settings } from '../config/transport-model';
import { nativeHttp, processCodec } from '../util/native-http';
import { Http1Pool } from './h1/pool';
import { Http2Pool, type UpstreamDispatchOptions, type UpstreamPool } from './h2-pool';

export type { UpstreamPool } from './h2-pool';

/** What the cluster manager asks of an endpoint's pool. */
export interface PoolOptions {
  readonly connectTimeoutMs: number;
  readonly maxConnections: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
  /**
   * http1/http2: that protocol; downstream: the request's own (use_downstream_protocol_config);
   * auto: ALPN h2 or http/1.1 (auto_config, TLS only).
   */
  readonly protocol: 'http1' | 'http2' | 'downstream' | 'auto';
  readonly http2: Http2Settings;
  /** TLS to the endpoint, read at each connect (certificates rotate; null while SDS secrets are missing); null: plaintext. */
  readonly tls: TlsProvider | null;
}

export type TlsProvider = () => tls.ConnectionOptions | null;

/** Makes the keep-alive pool for one endpoint; tests and bench/ may swap it. */
export type PoolFactory = (origin: string, options: PoolOptions) => UpstreamPool;

/** The protocol a request came in on, for use_downstream_protocol_config. */
export type DownstreamProtocol = 'HTTP/1.1' | 'HTTP/2';

export const defaultPoolFactory: PoolFactory = (origin, o) => {
  switch (o.protocol) {
    case 'http1':
      return http1Pool(origin, o);
    case 'http2':
      return http2Pool(origin, o);
    case 'downstream':
      return new ByDownstreamProtocol(() => http1Pool(origin, o), () => http2Pool(origin, o));
    case 'auto':
      return new ByAlpn(origin, o, () => http1Pool(origin, o), () => http2Pool(origin, o));
  }
};

function http1Pool(origin: string, o: PoolOptions): UpstreamPool {
  // The fast codec's own pool (raw sockets, Node's llhttp); undici's Pool with SIDEMIRROR_HTTP1_CODEC=node.
  const native = processCodec().codec === 'fast' ? nativeHttp() : null;
  if (native !== null) {
    return new Http1Pool(origin, native, {
      connectTimeoutMs: o.connectTimeoutMs,
      maxConnections: o.maxConnections,
      keepAliveTimeoutMs: o.keepAliveTimeoutMs,
      maxRequestsPerConnection: o.maxRequestsPerConnection,
      tls: o.tls,
    });
  }
  return (require('./undici-pool') as typeof import('./undici-pool')).undiciHttp1Pool(origin, o);
}

function http2Pool(origin: string, o: PoolOptions): UpstreamPool {
  return new Http2Pool(origin, {
    connectTimeoutMs: o.connectTimeoutMs,
    maxConnections: o.maxConnections,
    maxConcurrentStreams: o.http2.maxConcurrentStreams,
    initialStreamWindowSize: o.http2.initialStreamWindowSize,
    initialConnectionWindowSize: o.http2.initialConnectionWindowSize,
    idleTimeoutMs: o.keepAliveTimeoutMs,
    maxRequestsPerConnection: o.maxRequestsPerConnection,
    tls: o.tls,
  });
}

/** Forwards the pool events of whichever pools it made. */
abstract class PoolPair extends EventEmitter implements UpstreamPool {
  #h1: UpstreamPool | null = null;
  #h2: UpstreamPool | null = null;

  constructor(private readonly makeH1: () => UpstreamPool, private readonly makeH2: () => UpstreamPool) {
    super();
  }

  abstract dispatch(opts: UpstreamDispatchOptions, handler: Dispatcher.DispatchHandler): boolean;

  protected pool(http2: boolean): UpstreamPool {
    if (http2) return (this.#h2 ??= this.#relay(this.makeH2()));
    return (this.#h1 ??= this.#relay(this.makeH1()));
  }

  #relay(pool: UpstreamPool): UpstreamPool {
    for (const event of ['connect', 'connectionError', 'disconnect'] as const) pool.on(event, (...args: unknown[]) => this.emit(event, ...args));
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all([this.#h1?.close(), this.#h2?.close()]);
  }

  async destroy(): Promise<void> {
    await Promise.all([this.#h1?.destroy(), this.#h2?.destroy()]);
  }
}

/** use_downstream_protocol_config: HTTP/2 for requests that came over HTTP/2, else HTTP/1.1. */
class ByDownstreamProtocol extends PoolPair {
  dispatch(opts: UpstreamDispatchOptions & { downstreamProtocol?: DownstreamProtocol }, handler: Dispatcher.DispatchHandler): boolean {
    return this.pool(opts.downstreamProtocol === 'HTTP/2').dispatch(opts, handler);
  }
}

/**
 * auto_config: the endpoint's ALPN answer (h2, else HTTP/1.1), learnt on one probe connection
 * and kept for the endpoint; requests wait for it (bounded by the connect timeout), and a probe
 * that fails is tried again by the next request.
 */
class ByAlpn extends PoolPair {
  #http2: boolean | null = null;
  #probe: Promise<boolean> | null = null;

  constructor(private readonly origin: string, private readonly o: PoolOptions, makeH1: () => UpstreamPool, makeH2: () => UpstreamPool) {
    super(makeH1, makeH2);
  }

  dispatch(opts: UpstreamDispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#http2 !== null) return this.pool(this.#http2).dispatch(opts, handler);
    this.#probe ??= this.#alpn().finally(() => {
      this.#probe = null;
    });
    this.#probe.then(
      (h2) => {
        this.#http2 = h2;
        this.pool(h2).dispatch(opts, handler);
      },
      // The plain HTTP/1.1 pool reports the connect failure the usual way.
      () => this.pool(false).dispatch(opts, handler),
    );
    return true;
  }

  #alpn(): Promise<boolean> {
    const url = new URL(this.origin);
    return new Promise((resolve, reject) => {
      const current = this.o.tls?.() ?? null;
      if (current === null) return reject(new Error('upstream TLS context not ready'));
      const socket = tls.connect({ ...current, host: url.hostname, port: Number(url.port), ALPNProtocols: ['h2', 'http/1.1'] });
      const timer = setTimeout(() => socket.destroy(new Error('ALPN probe timed out')), this.o.connectTimeoutMs || 5000);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(socket.alpnProtocol === 'h2');
        socket.end();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }
}
