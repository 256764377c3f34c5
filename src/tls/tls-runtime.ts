import type { ConnectionOptions } from 'node:tls';
import type { Cluster, Listener } from '../config/model';
import type { DownstreamTlsContext, Secret, UpstreamTlsContext } from '../config/transport-model';
import type { ClusterStats, ListenerStats, StatsScopes } from '../stats/scopes';
import type { CertificateEntry } from './certificates';
import { ClientTlsContext } from './client-context';
import { SecretStore } from './secret-store';
import { ServerTlsContext } from './server-context';
import type { SslCounterName, SslCounters } from './ssl-counters';

/**
 * The proxy's TLS: one secret store (bootstrap secrets, SDS secrets), the listeners' server
 * contexts and the clusters' client contexts built on it, their counters mapped onto the stats,
 * and what /certs shows.
 */
export class TlsRuntime {
  readonly store = new SecretStore();
  readonly #servers = new Set<ServerTlsContext>();
  /** Client contexts by their config object: a cluster's hosts share one. */
  readonly #clients = new WeakMap<UpstreamTlsContext, ClientTlsContext>();
  readonly #clientList = new Set<ClientTlsContext>();

  constructor(private readonly scopes: StatsScopes) {}

  setStaticSecrets(secrets: readonly Secret[]): void {
    this.store.setStatic(secrets);
  }

  readonly serverContext = (ctx: DownstreamTlsContext, listener: Listener): ServerTlsContext => {
    const context = new TrackedServerContext(ctx, { store: this.store, counters: listenerCounters(this.scopes.listener(listener.statPrefix)) }, this.#servers);
    this.#servers.add(context);
    return context;
  };

  /** Node's client options for a cluster's TLS (null while an SDS secret it needs has not come). */
  readonly clientOptions = (ctx: UpstreamTlsContext, cluster: Cluster): ConnectionOptions | null => {
    let context = this.#clients.get(ctx);
    if (!context) {
      context = new ClientTlsContext(ctx, { store: this.store, counters: clusterCounters(this.scopes.cluster(cluster.name)) });
      this.#clients.set(ctx, context);
      this.#clientList.add(context);
    }
    return context.connectOptions();
  };

  /** Envoy's /certs: every context's certificates. */
  certificates(): { certificates: CertificateEntry[] } {
    return { certificates: [...this.#servers, ...this.#clientList].map((c) => c.certificates()) };
  }

  close(): void {
    for (const c of [...this.#servers, ...this.#clientList]) c.close();
    this.store.close();
  }
}

function listenerCounters(stats: ListenerStats): SslCounters {
  const byName: Partial<Record<SslCounterName, { inc(): void }>> = {
    'ssl.handshake': stats.sslHandshake,
    'ssl.connection_error': stats.sslConnectionError,
    'ssl.no_certificate': stats.sslNoCertificate,
    'ssl.fail_verify_error': stats.sslFailVerifyError,
    'ssl.fail_verify_san': stats.sslFailVerifySan,
    'ssl.fail_verify_no_cert': stats.sslFailVerifyNoCert,
  };
  return { inc: (name) => byName[name]?.inc() };
}

function clusterCounters(stats: ClusterStats): SslCounters {
  const byName: Partial<Record<SslCounterName, { inc(): void }>> = {
    'ssl.handshake': stats.sslHandshake,
    'ssl.connection_error': stats.sslConnectionError,
  };
  return { inc: (name) => byName[name]?.inc() };
}

/** A server context that leaves the runtime's list (and /certs) when its chain closes it. */
class TrackedServerContext extends ServerTlsContext {
  constructor(ctx: DownstreamTlsContext, options: ConstructorParameters<typeof ServerTlsContext>[1], private readonly owner: Set<ServerTlsContext>) {
    super(ctx, options);
  }

  override close(): void {
    this.owner.delete(this);
    super.close();
  }
}
