import type { Socket } from 'node:net';
import type { UpstreamCluster } from '../upstream/cluster-manager';
import type { HashKey } from '../upstream/load-balancer';
import type { Host } from '../upstream/host';
import type { ClusterConnectionStats, TcpStats } from '../stats/tcp-stats';
import { type ConnectFailure, type ConnectResult, connectUpstream } from './upstream-connect';
import { type TcpSessionInfo, newSessionInfo } from './session-info';
import { Relay } from './relay';

/** What a session needs from its filter chain's TCP proxy. */
export interface SessionContext {
  readonly stats: TcpStats;
  readonly maxConnectAttempts: number;
  readonly idleTimeoutMs: number;
  readonly maxDurationMs: number;
  /** Bytes waiting to be written downstream past which the upstream stops being read. */
  readonly downstreamBufferLimit: number;
  /** Bytes waiting to be written upstream past which the downstream stops being read. */
  readonly upstreamBufferLimit: number;
  readonly hashKey: HashKey;
  readonly ended: (info: TcpSessionInfo) => void;
}

/**
 * One downstream connection proxied to one upstream connection, Envoy's tcp_proxy Filter:
 *   1. the downstream is not read until the upstream is up (its bytes wait in the socket);
 *   2. before each attempt: the cluster's max_connections breaker (upstream_cx_overflow), then
 *      max_connect_attempts (upstream_cx_connect_attempts_exceeded), then a healthy host
 *      (upstream_cx_none_healthy); any of them closes the downstream at once;
 *   3. a failed or timed-out attempt (connect_timeout) is retried on a newly picked host while
 *      attempts remain;
 *   4. once up, bytes flow both ways (relay.ts), half-closes pass through, and when one side
 *      closes the other is closed once what it still has to send is flushed. A downstream that
 *      closes while the upstream still has bytes to take counts as an upstream flush;
 *   5. idle_timeout (no bytes either way) and max_downstream_connection_duration close both at once.
 */
export class TcpSession {
  readonly info: TcpSessionInfo;
  #up: Socket | null = null;
  #abortConnect: (() => void) | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #durationTimer: NodeJS.Timeout | null = null;
  #attempts = 0;
  #flushing = false;
  #done = false;
  #downClosed = false;

  constructor(
    private readonly down: Socket,
    private readonly cluster: UpstreamCluster | null,
    private readonly ctx: SessionContext,
  ) {
    this.info = newSessionInfo(down, cluster?.name ?? null);
  }

  start(): void {
    const { down, ctx } = this;
    // The proxy ends each side itself, after the other side's end: never Node on its own.
    down.allowHalfOpen = true;
    down.on('error', () => undefined);
    down.once('close', () => this.#downstreamClosed());
    if (ctx.maxDurationMs > 0) {
      this.#durationTimer = setTimeout(() => {
        ctx.stats.maxDuration.inc();
        this.#closeNow();
      }, ctx.maxDurationMs);
    }
    if (!this.cluster) {
      ctx.stats.cxNoRoute.inc();
      this.#refuse('NR');
      return;
    }
    this.#attempt(this.cluster);
  }

  #attempt(cluster: UpstreamCluster): void {
    if (this.#downClosed) return;
    const connections = cluster.stats.connections;
    if (cluster.tcpConnections >= cluster.config.circuitBreakers.maxConnections) {
      connections.cxOverflow.inc();
      return this.#refuse('UO');
    }
    if (this.#attempts >= this.ctx.maxConnectAttempts) {
      connections.cxAttemptsExceeded.inc();
      return this.#refuse('URX');
    }
    const host = cluster.pick(this.ctx.hashKey);
    if (!host) {
      cluster.stats.noneHealthy.inc();
      return this.#refuse('UH');
    }
    this.#attempts++;
    this.#hold(cluster, connections, host);
    const abort = connectUpstream(host, cluster.config.connectTimeoutMs, (r) => this.#connected(cluster, connections, host, r));
    this.#abortConnect = () => {
      abort();
      this.#release(cluster, connections, host);
    };
  }

  /** An upstream connection exists from its first attempt until it closes (Envoy's upstream_cx_total/active). */
  #hold(cluster: UpstreamCluster, connections: ClusterConnectionStats, host: Host): void {
    cluster.tcpConnections++;
    cluster.stats.cxTotal.inc();
    connections.cxActive.inc();
    host.counters.cxTotal++;
    host.active++;
  }

  #release(cluster: UpstreamCluster, connections: ClusterConnectionStats, host: Host): void {
    cluster.tcpConnections--;
    connections.cxActive.dec();
    host.active--;
  }

  #connected(cluster: UpstreamCluster, connections: ClusterConnectionStats, host: Host, r: ConnectResult): void {
    this.#abortConnect = null;
    if (!r.ok) {
      this.#release(cluster, connections, host);
      this.#countFailure(cluster, connections, host, r.failure);
      this.info.flags.add('UF');
      this.#attempt(cluster);
      return;
    }
    const up = r.socket;
    up.on('error', () => undefined);
    if (host.tls) cluster.stats.sslHandshake.inc();
    this.#up = up;
    this.info.upstreamHost = host.addressPort;
    up.once('close', () => {
      this.#release(cluster, connections, host);
      if (this.#flushing) this.ctx.stats.upstreamFlushActive.dec();
      this.#upstreamClosed();
    });
    this.#startRelay(up, connections);
  }

  #countFailure(cluster: UpstreamCluster, connections: ClusterConnectionStats, host: Host, failure: ConnectFailure): void {
    cluster.stats.cxConnectFail.inc();
    host.counters.cxConnectFail++;
    if (failure === 'timeout') connections.cxConnectTimeout.inc();
    if (failure === 'tls') cluster.stats.sslConnectionError.inc();
  }

  #startRelay(up: Socket, connections: ClusterConnectionStats): void {
    const { down, ctx } = this;
    const touch = this.#touch;
    if (ctx.idleTimeoutMs > 0) this.#idleTimer = setTimeout(() => this.#idle(), ctx.idleTimeoutMs);
    // Downstream → upstream: paused reading is the downstream's flow control.
    new Relay(down, up, ctx.upstreamBufferLimit, {
      bytes: (n) => {
        ctx.stats.rxBytes.inc(n);
        connections.txBytes.inc(n);
        this.info.bytesReceived += n;
      },
      paused: () => ctx.stats.pausedReading.inc(),
      resumed: () => ctx.stats.resumedReading.inc(),
      activity: touch,
    }).start();
    new Relay(up, down, ctx.downstreamBufferLimit, {
      bytes: (n) => {
        connections.rxBytes.inc(n);
        ctx.stats.txBytes.inc(n);
        this.info.bytesSent += n;
      },
      paused: () => connections.pausedReading.inc(),
      resumed: () => connections.resumedReading.inc(),
      activity: touch,
    }).start();
  }

  /** Bytes moved one way or the other: the idle timer starts over. */
  readonly #touch = (): void => {
    this.#idleTimer?.refresh();
  };

  #idle(): void {
    this.ctx.stats.idleTimeout.inc();
    this.#closeNow();
  }

  #downstreamClosed(): void {
    this.#downClosed = true;
    // An attempt in flight is abandoned with its connection.
    this.#abortConnect?.();
    this.#abortConnect = null;
    const up = this.#up;
    if (!up || up.destroyed) return this.#finishIfDone();
    // Envoy closes the upstream after flushing what the downstream sent (FlushWrite); a flush
    // still owed to the upstream is counted and held until it is done or the idle timer fires.
    if (up.writableLength > 0) {
      this.#flushing = true;
      this.ctx.stats.upstreamFlushTotal.inc();
      this.ctx.stats.upstreamFlushActive.inc();
    }
    closeAfterFlush(up);
  }

  #upstreamClosed(): void {
    if (!this.down.destroyed) closeAfterFlush(this.down);
    this.#finishIfDone();
  }

  #finishIfDone(): void {
    if (this.#downClosed && (this.#up === null || this.#up.destroyed)) this.#finish();
  }

  /** The session cannot reach an upstream: the downstream is closed without flushing (Envoy's NoFlush). */
  #refuse(flag: string): void {
    this.info.flags.add(flag);
    this.down.destroy();
  }

  #closeNow(): void {
    this.#up?.destroy();
    this.down.destroy();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    if (this.#durationTimer) clearTimeout(this.#durationTimer);
    this.info.durationMs = performance.now() - this.info.startMs;
    this.ctx.ended(this.info);
  }
}

/** Ends `socket` after its pending bytes, then closes it without waiting for the peer's end. */
function closeAfterFlush(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  if (!socket.writableEnded) socket.end();
}
