import type { Socket } from 'node:net';
import { plainAddress } from '../http/headers';

/**
 * What one proxied connection did, handed to the TCP proxy's `ended` hook when both sides have
 * closed: the facts Envoy's access log operators read for a TCP connection (%START_TIME%,
 * %DURATION%, %BYTES_RECEIVED%, %BYTES_SENT%, %UPSTREAM_HOST%, %UPSTREAM_CLUSTER%,
 * %DOWNSTREAM_REMOTE_ADDRESS%, %RESPONSE_FLAGS%). Access logs are wired to it elsewhere.
 */
export interface TcpSessionInfo {
  /** Wall clock at accept, ms since the epoch. */
  readonly startTime: number;
  /** performance.now() at accept. */
  readonly startMs: number;
  durationMs: number;
  /** The downstream peer, `ip:port`. */
  readonly downstreamRemoteAddress: string;
  /** null: the chain named a cluster that does not exist. */
  readonly upstreamCluster: string | null;
  /** `ip:port` of the host the connection went to; null when none was reached. */
  upstreamHost: string | null;
  /** Downstream → upstream. */
  bytesReceived: number;
  /** Upstream → downstream. */
  bytesSent: number;
  /** Envoy's response flags: NR (no cluster), UO (max_connections), URX (attempts exhausted), UH (no healthy host), UF (an attempt failed). */
  readonly flags: Set<string>;
}

export function newSessionInfo(down: Socket, cluster: string | null): TcpSessionInfo {
  const ip = plainAddress(down.remoteAddress);
  return {
    startTime: Date.now(),
    startMs: performance.now(),
    durationMs: 0,
    downstreamRemoteAddress: ip.includes(':') ? `[${ip}]:${down.remotePort ?? 0}` : `${ip}:${down.remotePort ?? 0}`,
    upstreamCluster: cluster,
    upstreamHost: null,
    bytesReceived: 0,
    bytesSent: 0,
    flags: new Set(),
  };
}
