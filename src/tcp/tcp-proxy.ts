import type { Socket } from 'node:net';
import type { TcpClusterSpecifier, TcpProxyConfig } from '../config/tcp-proxy-model';
import { plainAddress } from '../http/headers';
import type { StatsScopes } from '../stats/scopes';
import type { TcpStats } from '../stats/tcp-stats';
import type { ClusterManager } from '../upstream/cluster-manager';
import { xxHash64 } from '../upstream/hash64';
import { type SessionContext, TcpSession } from './session';
import type { TcpSessionInfo } from './session-info';

export type { TcpSessionInfo } from './session-info';

/** Envoy's default per_connection_buffer_limit_bytes, which sidemirror's clusters always have. */
const UPSTREAM_BUFFER_LIMIT = 1024 * 1024;

export interface TcpProxyDeps {
  readonly clusters: ClusterManager;
  readonly stats: StatsScopes;
  /**
   * Called once per downstream connection when both of its sides have closed. The access log
   * hook: nothing is built for it unless a consumer is given.
   */
  readonly sessionEnded?: (info: TcpSessionInfo) => void;
}

/**
 * The TCP proxy of one filter chain (Envoy's envoy.filters.network.tcp_proxy): each connection
 * handed to it, plaintext or with its TLS already terminated by the listener, goes to a host of
 * the chain's cluster (or of one weighted cluster, picked per connection) as a session.
 */
export class TcpProxy {
  readonly stats: TcpStats;

  constructor(
    readonly config: TcpProxyConfig,
    private readonly deps: TcpProxyDeps,
    /** The listener's per_connection_buffer_limit_bytes: what may wait to be written downstream. */
    private readonly downstreamBufferLimit: number,
    private readonly random: () => number = Math.random,
  ) {
    this.stats = deps.stats.tcp(config.statPrefix);
  }

  serve(socket: Socket): void {
    this.stats.cxTotal.inc();
    const c = this.config;
    const cluster = this.deps.clusters.get(pickCluster(c.cluster, this.random)) ?? null;
    const ctx: SessionContext = {
      stats: this.stats,
      maxConnectAttempts: c.maxConnectAttempts,
      idleTimeoutMs: c.idleTimeoutMs,
      maxDurationMs: c.maxDownstreamConnectionDurationMs,
      downstreamBufferLimit: this.downstreamBufferLimit,
      upstreamBufferLimit: UPSTREAM_BUFFER_LIMIT,
      hashKey: c.hashSourceIp ? sourceIpHash(socket) : null,
      ended: this.deps.sessionEnded ?? ignore,
    };
    new TcpSession(socket, cluster, ctx).start();
  }
}

/** The cluster for one connection: the configured one, or a weighted pick. */
export function pickCluster(spec: TcpClusterSpecifier, random: () => number): string {
  if (spec.kind === 'cluster') return spec.name;
  let point = Math.floor(random() * spec.totalWeight);
  for (const c of spec.clusters) {
    if (point < c.weight) return c.name;
    point -= c.weight;
  }
  return spec.clusters[spec.clusters.length - 1]!.name;
}

/** hash_policy source_ip: Envoy hashes the downstream IP's text with xxHash64. */
function sourceIpHash(socket: Socket): bigint | null {
  const ip = plainAddress(socket.remoteAddress);
  return ip ? xxHash64(ip) : null;
}

function ignore(): void {}
