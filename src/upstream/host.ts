import type { TlsProvider, UpstreamPool } from './pool-factory';

/** One upstream endpoint, resolved to an address, with its own keep-alive pool. */
export interface Host {
  readonly address: string;
  readonly port: number;
  /** `ip:port`, or `[ip]:port` for IPv6; the name Envoy's /clusters prints. */
  readonly addressPort: string;
  /** The endpoint's hostname (from config or DNS), used by auto_host_rewrite. */
  readonly hostname: string;
  readonly weight: number;
  readonly pool: UpstreamPool;
  /** The endpoint's TLS (its transport socket), for health checks; null: plaintext. */
  readonly tls: TlsProvider | null;
  healthy: boolean;
  /** Requests in flight, for least-request balancing and /clusters. */
  active: number;
  readonly counters: HostCounters;
  /** Where the data path reports this host's results when its cluster has outlier detection. */
  outlier: OutlierSink | null;
}

/** A local-origin event, as Envoy's router reports it: connected, connection failed or reset, timed out. */
export type LocalOriginResult = 'connect_success' | 'connect_failed' | 'timeout';

/** What the data path tells a host's outlier monitor (Envoy's DetectorHostMonitor put* calls). */
export interface OutlierSink {
  /** An upstream response's status. */
  putHttpResponseCode(status: number): void;
  /** A local-origin event; `code` is the HTTP status it stands for when errors are not split. */
  putResult(result: LocalOriginResult, code?: number): void;
}

export interface HostCounters {
  rqTotal: number;
  rqSuccess: number;
  rqError: number;
  rqTimeout: number;
  cxTotal: number;
  cxConnectFail: number;
}

export function formatAddressPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
