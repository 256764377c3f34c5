// The TCP proxy network filter (Envoy's extensions.filters.network.tcp_proxy.v3.TcpProxy) in the
// plain model. Imports nothing.

/** Where a connection goes: one cluster, or one of several picked per connection by weight. */
export type TcpClusterSpecifier =
  | { readonly kind: 'cluster'; readonly name: string }
  | { readonly kind: 'weighted_clusters'; readonly clusters: readonly TcpClusterWeight[]; readonly totalWeight: number };

export interface TcpClusterWeight {
  readonly name: string;
  /** At least 1. */
  readonly weight: number;
}

export interface TcpProxyConfig {
  /** Envoy's stats scope `tcp.<stat_prefix>.`. */
  readonly statPrefix: string;
  readonly cluster: TcpClusterSpecifier;
  /** No bytes either way for this long closes both connections (Envoy's default 1 h); 0: never. */
  readonly idleTimeoutMs: number;
  /** Upstream connection attempts per downstream connection (Envoy's default 1). */
  readonly maxConnectAttempts: number;
  /** hash_policy source_ip: the downstream IP is the hash key for consistent-hashing balancers. */
  readonly hashSourceIp: boolean;
  /** The downstream connection is closed after this long (0: no limit). */
  readonly maxDownstreamConnectionDurationMs: number;
}
