import type { ResponseFlag } from '../../access-log/response-flags';
import type { Ctx, Pb } from '../../config/decode/common';
import type { Logger } from '../../log/logger';
import type { CompiledRoute } from '../../router/route-table';
import type { Runtime } from '../../runtime/runtime';
import type { StatsScopes } from '../../stats/scopes';
import type { ClusterManager } from '../../upstream/cluster-manager';
import type { HeaderMap } from '../headers';
import type { DownstreamTlsInfo } from '../stream-info';

/**
 * One kind of HTTP filter, the Envoy way: its typed_config decoded once (every error with its
 * field path), optionally a per-route config (typed_per_filter_config on a route, virtual host or
 * route configuration), and a runner built per connection manager that serves each request.
 *
 * `C` and `R` are the filter's own plain, immutable models; nothing outside the filter reads them.
 * A runner holds no timer or socket of its own (a connection manager is dropped, never closed,
 * when its listener is updated): state such as a token bucket is brought up to date when read.
 */
export interface HttpFilterKind<C = unknown, R = unknown> {
  /** The full name of the typed_config message (no type.googleapis.com/ prefix). */
  readonly configType: string;
  /** Per-route config message names this filter reads (Envoy often uses the same message). */
  readonly perRouteTypes?: readonly string[];
  decode(config: Pb, ctx: Ctx): C;
  decodePerRoute?(config: Pb, ctx: Ctx, type: string): R;
  build(config: C, env: FilterEnv): HttpFilterRunner<R>;
}

/** What a filter may use at run time, shared by every request of one connection manager. */
export interface FilterEnv {
  readonly filterName: string;
  readonly statPrefix: string;
  readonly stats: StatsScopes;
  readonly runtime: Runtime;
  readonly clusters: ClusterManager;
  readonly logger: Logger;
  /** True once the proxy drains (SIGTERM, /drain_listeners): health checks then fail. */
  readonly draining: () => boolean;
}

/** A filter built for one connection manager. */
export interface HttpFilterRunner<R = unknown> {
  /**
   * The filter's part in one request, or null when it has nothing to do for it (a cheap check
   * here keeps such requests off every later phase). `perRoute` is the most specific per-route
   * config by this filter's name (route, then virtual host, then route configuration).
   */
  start(request: FilterRequest, perRoute: R | undefined): FilterStream | null;
}

/** A request as filters see it, after the connection manager's header rules and route lookup. */
export interface FilterRequest {
  readonly method: string;
  /** The request target, with its query string. */
  readonly path: string;
  /** The lowercase Host / :authority. */
  readonly authority: string;
  readonly scheme: 'http' | 'https';
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  /** Request headers: filters may change them before the router reads them. */
  readonly headers: HeaderMap;
  /** The downstream peer as the connection manager trusts it (x-forwarded-for rules applied). */
  readonly remoteAddress: string;
  /** The peer of the TCP connection itself. */
  readonly directRemoteAddress: string;
  readonly localAddress: string;
  readonly localPort: number;
  /** The downstream connection (its socket, or its HTTP/2 session): one identity per connection. */
  readonly connection: object;
  /** The downstream TLS session (SNI, ALPN, the client certificate's SANs), null on plaintext. */
  readonly tls: DownstreamTlsInfo | null;
  readonly grpc: boolean;
  /** Route the request matched; null when none did (the router then answers 404). */
  readonly route: CompiledRoute | null;
  /** The request carries a body (known from its framing before any body byte is read). */
  readonly hasBody: boolean;
  /** The cluster the route picked (weighted clusters are picked once, before the filters run). */
  readonly clusterName: string | null;
  /** What filters tell the rest of the request's life (access log filters read them). */
  readonly marks: RequestMarks;
}

/** Facts about a request that filters establish and later stages read. */
export interface RequestMarks {
  /** The health_check filter matched it (Envoy's not_health_check_filter leaves it out of logs). */
  healthCheck: boolean;
}

/** An answer from the proxy itself: the filter stops the chain and the client gets this. */
export interface LocalReply {
  readonly status: number;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** For gRPC requests: the grpc-status to send (else mapped from the HTTP status, as Envoy). */
  readonly grpcStatus?: number;
  /** Envoy's %RESPONSE_CODE_DETAILS% for access logs, e.g. "fault_filter_abort". */
  readonly details?: string;
  /** Envoy's response flag for access logs, e.g. "FI", "RL". */
  readonly flag?: ResponseFlag;
}

/** A request-phase result: undefined lets the request go on to the next filter. */
export type DecodeResult = LocalReply | undefined;

/**
 * One filter's part in one request. Every phase is optional. Request phases run in filter order,
 * response phases in reverse order, as in Envoy.
 */
export interface FilterStream {
  /** Request headers: may change `request.headers`, answer locally, or wait (a delay). */
  decodeHeaders?(): DecodeResult | Promise<DecodeResult>;
  /** Response headers, before they go to the client (also for local replies of later filters). */
  encodeHeaders?(status: number, headers: HeaderMap): void;
  /** The request is over (answered, failed or reset): release what it holds. */
  done?(): void;
}
