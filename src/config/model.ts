import type { FractionalPercent, HeaderEdits, HeaderMutation, HeaderToAdd, RuntimeFraction } from './base-model';
import type { HeaderMatcher, StringMatcher } from './matcher-model';
import type { PerFilterConfigs } from './filter-model';
import type { AccessLogConfig } from './access-log-model';
import type { ExtMirrorPolicy, MirrorFilterConfig } from './mirror-ext-model';
import type { OutlierDetectionConfig } from './outlier-model';
import type { AttemptHeaders, RetryPolicy } from './retry-model';
import type { TcpProxyConfig } from './tcp-proxy-model';
import type { DownstreamTlsContext, FilterChainMatch, Http2Settings, Secret, TransportSocketMatch, UpstreamProtocol, UpstreamTlsContext } from './transport-model';

// The plain, immutable configuration model. Decoders build it from protobuf messages; the data
// path compiles it into runtime objects and never sees protobuf or YAML. Imports nothing.

export interface SocketAddress {
  readonly host: string;
  readonly port: number;
}

export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
}

export interface AdminConfig {
  readonly address: SocketAddress;
}

/** Envoy's RouteAction.RequestMirrorPolicy. Exactly one of cluster and clusterHeader is set. */
export interface MirrorPolicy {
  readonly cluster: string | null;
  readonly clusterHeader: string | null;
  /** null: every request. */
  readonly runtimeFraction: RuntimeFraction | null;
  readonly traceSampled: boolean | null;
  readonly disableShadowHostSuffixAppend: boolean;
  readonly requestHeadersMutations: readonly HeaderMutation[];
  readonly hostRewriteLiteral: string | null;
}

export type { HeaderMatch, HeaderMatcher, StringMatcher } from './matcher-model';
export type { FractionalPercent, HeaderEdits, HeaderMutation, HeaderToAdd, RuntimeFraction } from './base-model';
export type * from './mirror-ext-model';
export type * from './retry-model';
export type * from './tcp-proxy-model';

export interface QueryParameterMatcher {
  readonly name: string;
  /** null: the parameter must be present. */
  readonly matcher: StringMatcher | null;
}

export type PathMatch =
  | { readonly kind: 'prefix' | 'path' | 'path_separated_prefix'; readonly value: string }
  | { readonly kind: 'safe_regex'; readonly value: string };

export interface RouteMatch {
  readonly path: PathMatch;
  readonly caseSensitive: boolean;
  readonly headers: readonly HeaderMatcher[];
  readonly queryParameters: readonly QueryParameterMatcher[];
  readonly runtimeFraction: RuntimeFraction | null;
  /** RouteMatch.grpc: only requests with content-type application/grpc*. */
  readonly grpc: boolean;
}

export interface WeightedClusterEntry extends HeaderEdits {
  readonly name: string;
  readonly weight: number;
  readonly hostRewriteLiteral: string | null;
}

export type ClusterSpecifier =
  | { readonly kind: 'cluster'; readonly name: string }
  | { readonly kind: 'cluster_header'; readonly header: string }
  | { readonly kind: 'weighted_clusters'; readonly clusters: readonly WeightedClusterEntry[]; readonly totalWeight: number };

export type HashPolicy =
  | { readonly kind: 'header'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'cookie'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'source_ip'; readonly terminal: boolean }
  | { readonly kind: 'query_parameter'; readonly name: string; readonly terminal: boolean };

export interface ForwardAction {
  readonly kind: 'forward';
  readonly cluster: ClusterSpecifier;
  /** 503 (Envoy's default) or 404 when the named cluster does not exist. */
  readonly clusterNotFoundResponseCode: number;
  readonly prefixRewrite: string | null;
  readonly regexRewrite: { readonly pattern: string; readonly substitution: string } | null;
  readonly hostRewriteLiteral: string | null;
  readonly hostRewriteHeader: string | null;
  readonly autoHostRewrite: boolean;
  /** 0 disables the route timeout; 0 too whenever max_stream_duration is set (Envoy's router then has none). */
  readonly timeoutMs: number;
  /** RouteAction.idle_timeout: the stream idle timeout once this route is chosen (0: none); null: the HCM's. */
  readonly idleTimeoutMs: number | null;
  readonly retryPolicy: RetryPolicy | null;
  readonly mirrorPolicies: readonly MirrorPolicy[];
  readonly hashPolicy: readonly HashPolicy[];
  /** max_stream_duration: the gRPC timeout header rule (null: grpc-timeout is not read) and the stream cap. */
  readonly maxStreamDuration: MaxStreamDuration;
  /** upgrade_configs on the route: per upgrade type (lower case), enabled or not; overrides the HCM's. */
  readonly upgradeConfigs: ReadonlyMap<string, boolean>;
}

/** RouteAction.MaxStreamDuration (and the legacy max_grpc_timeout/grpc_timeout_offset), in ms. */
export interface MaxStreamDuration {
  /** 0: none. */
  readonly maxStreamDurationMs: number;
  /** null: grpc-timeout is ignored; 0: grpc-timeout is used uncapped; else the cap. */
  readonly grpcTimeoutHeaderMaxMs: number | null;
  readonly grpcTimeoutHeaderOffsetMs: number;
  /**
   * false: from max_stream_duration (Envoy's HCM stream timer). A request carrying grpc-timeout,
   * when grpcTimeoutHeaderMaxMs is not null, is limited to the header's value, capped (a cap of
   * 0: none), then less the offset (an offset at least as large leaves 0: the stream ends at
   * once); any other request to maxStreamDurationMs (0: none). The grpc-timeout header is not
   * rewritten. With max_stream_duration set Envoy's router applies no route timeout at all, so
   * the decoder sets ForwardAction.timeoutMs to 0.
   * true: from the deprecated max_grpc_timeout/grpc_timeout_offset, read only when
   * max_stream_duration is absent (Envoy ignores them otherwise). For a gRPC request
   * (content-type application/grpc*) the route timeout becomes the header's value (none: no
   * timeout), less the offset only when the value is larger than it, capped (0: none); the
   * grpc-timeout sent upstream is rewritten to it. maxStreamDurationMs is 0.
   */
  readonly legacy: boolean;
}

export interface DirectResponseAction {
  readonly kind: 'direct_response';
  readonly status: number;
  readonly body: string | null;
}

export interface RedirectAction {
  readonly kind: 'redirect';
  readonly scheme: string | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly path: string | null;
  readonly prefixRewrite: string | null;
  readonly responseCode: number;
  readonly stripQuery: boolean;
}

export type RouteActionModel = ForwardAction | DirectResponseAction | RedirectAction;

export interface Route extends HeaderEdits {
  readonly name: string;
  readonly match: RouteMatch;
  readonly action: RouteActionModel;
  readonly perFilter: PerFilterConfigs;
  /** sidemirror mirror policies by the name of the filter they are configured for. */
  readonly extMirrorPolicies: ReadonlyMap<string, readonly ExtMirrorPolicy[]>;
  /** per_request_buffer_limit_bytes: the body kept for retries (null: the virtual host's). */
  readonly perRequestBufferLimitBytes: number | null;
}

export interface VirtualHost extends HeaderEdits {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly Route[];
  readonly mirrorPolicies: readonly MirrorPolicy[];
  readonly retryPolicy: RetryPolicy | null;
  readonly perFilter: PerFilterConfigs;
  readonly extMirrorPolicies: ReadonlyMap<string, readonly ExtMirrorPolicy[]>;
  /** per_request_buffer_limit_bytes (null: the listener's per_connection_buffer_limit_bytes). */
  readonly perRequestBufferLimitBytes: number | null;
  readonly attemptHeaders: AttemptHeaders;
}

export interface RouteConfiguration extends HeaderEdits {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
  readonly mirrorPolicies: readonly MirrorPolicy[];
  readonly validateClusters: boolean | null;
  /** Lowercase names removed from every request that is not internal, before routing. */
  readonly internalOnlyHeaders: readonly string[];
  readonly perFilter: PerFilterConfigs;
}

/** An Any we understood: its type URL and the decoded message as a plain object. */
export interface TypedConfig {
  readonly typeUrl: string;
  readonly value: Readonly<Record<string, unknown>>;
}

export interface HttpFilter {
  readonly name: string;
  readonly config: TypedConfig | null;
  readonly isOptional: boolean;
  /** Off unless a route's typed_per_filter_config names it. */
  readonly disabled: boolean;
  /** The filter's own model, decoded by its module (src/http/filters); undefined for the router and mirror filter. */
  readonly settings: unknown;
}

export interface HttpConnectionManager {
  readonly statPrefix: string;
  readonly codecType: 'AUTO' | 'HTTP1' | 'HTTP2' | 'HTTP3';
  /** Inline route configuration, or null when routes come over RDS. */
  readonly routeConfig: RouteConfiguration | null;
  readonly rdsRouteConfigName: string | null;
  readonly httpFilters: readonly HttpFilter[];
  /** The sidemirror mirror filter, when listed in http_filters. */
  readonly mirrorFilter: { readonly name: string; readonly config: MirrorFilterConfig } | null;
  readonly serverName: string;
  readonly serverHeaderTransformation: 'OVERWRITE' | 'APPEND_IF_ABSENT' | 'PASS_THROUGH';
  readonly useRemoteAddress: boolean;
  readonly xffNumTrustedHops: number;
  /** null: no address is internal (Envoy's default since 1.33). */
  readonly internalAddressConfig: InternalAddressConfig | null;
  readonly skipXffAppend: boolean;
  readonly via: string;
  readonly generateRequestId: boolean;
  readonly preserveExternalRequestId: boolean;
  readonly alwaysSetRequestIdInResponse: boolean;
  readonly streamIdleTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly requestHeadersTimeoutMs: number;
  readonly upgradeTypes: readonly string[];
  /** http_protocol_options (Envoy's Http1ProtocolOptions) as the downstream codec applies them. */
  readonly http1: Http1Settings;
  /** normalize_path: RFC 3986 path normalization before routing (Envoy's default: off). */
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
  /** path_with_escaped_slashes_action; IMPLEMENTATION_SPECIFIC_DEFAULT is Envoy's KEEP_UNCHANGED. */
  readonly pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' | 'REJECT_REQUEST' | 'UNESCAPE_AND_REDIRECT' | 'UNESCAPE_AND_FORWARD';
  /** Envoy's max_request_headers_kb (default 60): larger request headers get a 431. */
  readonly maxRequestHeadersKb: number;
  readonly commonHttpProtocolOptions: DownstreamProtocolOptions;
  /** http2_protocol_options, with Envoy's defaults, for HTTP/2 connections (codec AUTO or HTTP2). */
  readonly http2: Http2Settings;
  /** access_log: one line per request (and, for shadow loggers, per shadow). */
  readonly accessLog: readonly AccessLogConfig[];
}

export interface Http1Settings {
  /** Absolute-form targets are split into authority and path (Envoy's default: true). */
  readonly allowAbsoluteUrl: boolean;
  /** Serve HTTP/1.0 (and HTTP/0.9); otherwise 426 Upgrade Required. */
  readonly acceptHttp10: boolean;
  /** Host for HTTP/1.0 requests that carry none ('' for none). */
  readonly defaultHostForHttp10: string;
}

/** An IP prefix; prefixLen is clamped to the family's width. */
export interface CidrRange {
  readonly addressPrefix: string;
  readonly prefixLen: number;
}

/** Envoy's HttpConnectionManager.InternalAddressConfig (unix_sockets is refused: TCP listeners only). */
export interface InternalAddressConfig {
  /** Empty: Envoy's built-in list (RFC 1918, fd00::/8, 127.0.0.1, ::1). */
  readonly cidrRanges: readonly CidrRange[];
}

/** The downstream side of core.v3.HttpProtocolOptions (common_http_protocol_options), in ms; 0: none. */
export interface DownstreamProtocolOptions {
  /** No request on the connection for this long closes it (Envoy's default 1 h). */
  readonly idleTimeoutMs: number;
  readonly maxConnectionDurationMs: number;
  /** More request headers than this get a 431 (Envoy's default 100). */
  readonly maxHeadersCount: number;
  /** The connection closes after this many requests (0: no limit). */
  readonly maxRequestsPerConnection: number;
}

/** A filter chain: what it matches, its TLS (null: plaintext) and its terminal network filter. */
export type FilterChain = HttpFilterChain | TcpProxyFilterChain;

interface FilterChainBase {
  readonly name: string;
  readonly match: FilterChainMatch;
  readonly tls: DownstreamTlsContext | null;
}

/** A chain ending in the HTTP connection manager. */
export interface HttpFilterChain extends FilterChainBase {
  readonly kind: 'http';
  readonly hcm: HttpConnectionManager;
}

/** A chain ending in the TCP proxy: the connection's bytes go to an upstream cluster as they are. */
export interface TcpProxyFilterChain extends FilterChainBase {
  readonly kind: 'tcp_proxy';
  readonly tcpProxy: TcpProxyConfig;
}

export interface Listener {
  readonly name: string;
  readonly address: SocketAddress;
  /** In config order; a connection takes the most specific match (Envoy's rules), else the default. */
  readonly filterChains: readonly FilterChain[];
  readonly defaultFilterChain: FilterChain | null;
  /**
   * listener_filters has envoy.filters.listener.tls_inspector: SNI and ALPN are known before TLS.
   * Envoy no longer adds one by itself: without it SNI and ALPN are unknown and the transport
   * protocol is "raw_buffer", so chains that match on them never match.
   */
  readonly tlsInspector: boolean;
  readonly perConnectionBufferLimitBytes: number;
  /** Envoy's listener stats scope: `listener.<stat_prefix>.`, or the address (`127.0.0.1_10000`). */
  readonly statPrefix: string;
  /** Not counted against the overload manager's global downstream connection limit. */
  readonly ignoreGlobalConnLimit: boolean;
  /** Envoy reads it for tracing only; sidemirror, which has no tracing, keeps it for /config_dump. */
  readonly trafficDirection: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  /** access_log: one line per downstream connection, when it closes. */
  readonly accessLog: readonly AccessLogConfig[];
}

export type ClusterType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS';
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH';

export interface LbEndpoint {
  readonly address: SocketAddress;
  readonly hostname: string;
  readonly weight: number;
  readonly priority: number;
  readonly healthStatus: string;
  /** metadata.filter_metadata["envoy.transport_socket_match"], for the cluster's transport_socket_matches. */
  readonly transportSocketMatch: ReadonlyMap<string, string>;
}

export interface ClusterLoadAssignment {
  readonly clusterName: string;
  readonly endpoints: readonly LbEndpoint[];
}

export interface CircuitBreakerThresholds {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

export interface Cluster {
  readonly name: string;
  readonly type: ClusterType;
  readonly connectTimeoutMs: number;
  readonly lbPolicy: LbPolicy;
  readonly leastRequestChoiceCount: number;
  /** Inline endpoints; for EDS clusters the assignment arrives separately. */
  readonly loadAssignment: ClusterLoadAssignment | null;
  readonly edsServiceName: string | null;
  readonly dnsRefreshRateMs: number;
  readonly dnsLookupFamily: 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL';
  readonly protocol: UpstreamProtocol;
  /** transport_socket: TLS to every endpoint (null: plaintext), unless a transport_socket_matches entry matches. */
  readonly tls: UpstreamTlsContext | null;
  readonly transportSocketMatches: readonly TransportSocketMatch[];
  readonly maxRequestsPerConnection: number;
  readonly idleTimeoutMs: number;
  readonly circuitBreakers: CircuitBreakerThresholds;
  /** Cluster-level mirror policies (HttpProtocolOptions); they override route-level ones. */
  readonly mirrorPolicies: readonly MirrorPolicy[];
  /** ring_hash_lb_config with Envoy's defaults filled in; null unless lb_policy is RING_HASH. */
  readonly ringHash: RingHashConfig | null;
  /** Active health checking (the cluster's one http_health_check), or null. */
  readonly healthCheck: HealthCheckConfig | null;
  /** outlier_detection with Envoy's defaults, or null; and common_lb_config.healthy_panic_threshold (percent). */
  readonly outlierDetection: OutlierDetectionConfig | null;
  readonly healthyPanicThreshold: number;
}

export interface RingHashConfig {
  readonly minimumRingSize: number;
  readonly maximumRingSize: number;
  readonly hashFunction: 'XX_HASH' | 'MURMUR_HASH_2';
}

/** Envoy's core.v3.HealthCheck with an http_health_check, durations in milliseconds. */
export interface HealthCheckConfig {
  readonly timeoutMs: number;
  readonly intervalMs: number;
  /** Up to this much is added at random to every interval. */
  readonly intervalJitterMs: number;
  /** The interval used while the cluster has never had a connection (Envoy's default 60 s). */
  readonly noTrafficIntervalMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  readonly http: HttpHealthCheckConfig;
}

export interface HttpHealthCheckConfig {
  /** The Host header; empty: the cluster's name, as Envoy does. */
  readonly host: string;
  readonly path: string;
  /** Half-open [start, end) ranges; [[200, 201]] by default. */
  readonly expectedStatuses: ReadonlyArray<readonly [number, number]>;
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: readonly string[];
}

export interface Bootstrap {
  readonly node: NodeInfo;
  readonly admin: AdminConfig | null;
  readonly listeners: readonly Listener[];
  readonly clusters: readonly Cluster[];
  /** layered_runtime's layers, lowest first (later layers override earlier ones). */
  readonly runtime: readonly RuntimeLayerConfig[];
  readonly dynamicResources: DynamicResources | null;
  readonly overloadManager: OverloadManagerConfig;
  /** static_resources.secrets, by name. */
  readonly secrets: readonly Secret[];
}

/** The overload manager's resource monitors sidemirror enforces. */
export interface OverloadManagerConfig {
  /** envoy.resource_monitors.global_downstream_max_connections; null: no global limit. */
  readonly maxActiveDownstreamConnections: number | null;
}

/** One runtime layer: a static layer's values (nested keys joined with dots), or the admin layer. */
export type RuntimeLayerConfig =
  | { readonly name: string; readonly kind: 'static'; readonly values: ReadonlyMap<string, string> }
  | { readonly name: string; readonly kind: 'admin' };

export interface DynamicResources {
  readonly adsClusterName: string | null;
  /** `ads_config.grpc_services[0].initial_metadata`: sent on every ADS stream (e.g. authorization). */
  readonly adsInitialMetadata: ReadonlyArray<{ readonly key: string; readonly value: string }>;
  /** `envoy_grpc.max_receive_message_length`: null when unset (the client's default), 0 unlimited. */
  readonly adsMaxReceiveMessageBytes: number | null;
  readonly ldsViaAds: boolean;
  readonly cdsViaAds: boolean;
  /** How long serving waits for the first CDS and LDS responses (Infinity: until they come). */
  readonly initialFetchTimeoutMs: number;
}
