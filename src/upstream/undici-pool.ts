import { Pool, buildConnector, type Dispatcher } from 'undici';
import type { UpstreamPool } from './h2-pool';
import type { PoolOptions, TlsProvider } from './pool-factory';

// undici's HTTP/1.1 pool, for the node:http fallback (SIDEMIRROR_HTTP1_CODEC=node) and health
// checks; pool-factory loads it only then, so the fast path never loads undici.

export function undiciHttp1Pool(origin: string, o: PoolOptions): UpstreamPool {
  const options: Pool.Options = {
    connections: o.maxConnections,
    keepAliveTimeout: o.keepAliveTimeoutMs,
    maxRequestsPerClient: o.maxRequestsPerConnection || undefined,
    // The router enforces Envoy's route timeout itself; undici's own idle timers stay out of it.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
  if (o.tls === null) return new Pool(origin, { ...options, connect: { timeout: o.connectTimeoutMs } }) as unknown as UpstreamPool;
  return new TlsPool(origin, options, o.tls, o.connectTimeoutMs) as unknown as UpstreamPool;
}


/**
 * undici over TLS with Envoy's SNI rule: the cluster's `sni`, or none. undici would take SNI
 * from each request's Host (a mirror's `-shadow` host, a new connection whenever it changes), so
 * every request carries one fixed name and the connector replaces it with the configured one.
 */
class TlsPool extends Pool {
  constructor(origin: string, options: Pool.Options, provider: TlsProvider, timeout: number) {
    super(origin, { ...options, connect: tlsConnector(provider, timeout) });
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return super.dispatch({ ...opts, servername: FIXED_SERVERNAME } as Dispatcher.DispatchOptions, handler);
  }
}

const FIXED_SERVERNAME = 'sidemirror.upstream';

/**
 * undici's connect option for a TLS endpoint: the options current at each connect (built per
 * connection: cheap next to a handshake, and rotated certificates apply), SNI only as configured.
 */
export function tlsConnector(provider: TlsProvider, timeout: number): buildConnector.connector {
  return (opts, callback) => {
    const current = provider();
    if (current === null) {
      callback(Object.assign(new Error('upstream TLS context not ready (SDS secret missing)'), { code: 'ERR_TLS_CONTEXT_NOT_READY' }), null);
      return;
    }
    const connector = buildConnector({ ...current, timeout } as buildConnector.BuildOptions);
    connector({ ...opts, servername: current.servername ?? '' }, callback);
  };
}

