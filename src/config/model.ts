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

/** Envoy's HeaderValueOption, with `append` folded into `appendAction`. */
export interface HeaderToAdd {
  readonly key: string;
  readonly value: string;
  readonly appendAction:
    | 'APPEND_IF_EXISTS_OR_ADD'
    | 'ADD_IF_ABSENT'
    | 'OVERWRITE_IF_EXISTS_OR_ADD'
    | 'OVERWRITE_IF_EXISTS';
  readonly keepEmptyValue: boolean;
}

export type HeaderMutation =
  | { readonly kind: 'remove'; readonly name: string }
  | { readonly kind: 'append'; readonly header: HeaderToAdd };

export interface HeaderEdits {
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly responseHeadersToRemove: readonly string[];
}

export interface FractionalPercent {
  readonly numerator: number;
  readonly denominator: number; // 100, 10_000 or 1_000_000
}

export interface RuntimeFraction {
  readonly defaultValue: FractionalPercent;
  /** Empty when the fraction cannot be overridden at run time. */
  readonly runtimeKey: string;
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

export type StringMatcher =
  | { readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly value: string; readonly ignoreCase: false };

export type HeaderMatch =
  | { readonly kind: 'string'; readonly matcher: StringMatcher }
  | { readonly kind: 'present'; readonly present: boolean }
  | { readonly kind: 'range'; readonly start: number; readonly end: number };

export interface HeaderMatcher {
  readonly name: string;
  readonly match: HeaderMatch;
  readonly invert: boolean;
  readonly treatMissingAsEmpty: boolean;
}

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

export interface RetryPolicy {
  readonly retryOn: readonly string[];
  readonly numRetries: number;
  readonly perTryTimeoutMs: number;
  readonly retriableStatusCodes: readonly number[];
}

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
  /** 0 disables the route timeout. */
  readonly timeoutMs: number;
  readonly idleTimeoutMs: number | null;
  readonly retryPolicy: RetryPolicy | null;
  readonly mirrorPolicies: readonly MirrorPolicy[];
  readonly hashPolicy: readonly HashPolicy[];
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
  readonly typedPerFilterConfig: ReadonlyMap<string, TypedConfig>;
  /** sidemirror mirror policies by the name of the filter they are configured for. */
  readonly extMirrorPolicies: ReadonlyMap<string, readonly ExtMirrorPolicy[]>;
}

export interface VirtualHost extends HeaderEdits {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly Route[];
  readonly mirrorPolicies: readonly MirrorPolicy[];
  readonly retryPolicy: RetryPolicy | null;
  readonly typedPerFilterConfig: ReadonlyMap<string, TypedConfig>;
  readonly extMirrorPolicies: ReadonlyMap<string, readonly ExtMirrorPolicy[]>;
}

export interface RouteConfiguration extends HeaderEdits {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
  readonly mirrorPolicies: readonly MirrorPolicy[];
  readonly validateClusters: boolean | null;
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
  readonly skipXffAppend: boolean;
  readonly via: string;
  readonly generateRequestId: boolean;
  readonly preserveExternalRequestId: boolean;
  readonly alwaysSetRequestIdInResponse: boolean;
  readonly streamIdleTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly requestHeadersTimeoutMs: number;
  readonly upgradeTypes: readonly string[];
}

export interface Listener {
  readonly name: string;
  readonly address: SocketAddress;
  readonly hcm: HttpConnectionManager;
  readonly perConnectionBufferLimitBytes: number;
}

export type ClusterType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS';
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH';

export interface LbEndpoint {
  readonly address: SocketAddress;
  readonly hostname: string;
  readonly weight: number;
  readonly priority: number;
  readonly healthStatus: string;
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
  readonly http2: boolean;
  readonly maxRequestsPerConnection: number;
  readonly idleTimeoutMs: number;
  readonly circuitBreakers: CircuitBreakerThresholds;
  /** Cluster-level mirror policies (HttpProtocolOptions); they override route-level ones. */
  readonly mirrorPolicies: readonly MirrorPolicy[];
  /** ring_hash_lb_config with Envoy's defaults filled in; null unless lb_policy is RING_HASH. */
  readonly ringHash: RingHashConfig | null;
  /** Active health checking (the cluster's one http_health_check), or null. */
  readonly healthCheck: HealthCheckConfig | null;
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
}

/** One runtime layer: a static layer's values (nested keys joined with dots), or the admin layer. */
export type RuntimeLayerConfig =
  | { readonly name: string; readonly kind: 'static'; readonly values: ReadonlyMap<string, string> }
  | { readonly name: string; readonly kind: 'admin' };

export interface DynamicResources {
  readonly adsClusterName: string | null;
  readonly ldsViaAds: boolean;
  readonly cdsViaAds: boolean;
}

// ── sidemirror's mirror filter (sidemirror.filters.http.mirror.v1) ────────────────────────────

export interface RedisServerAddress {
  readonly host: string;
  readonly port: number;
}

export type RedisConnectionModel =
  | { readonly kind: 'single'; readonly server: RedisServerAddress; readonly password: string | null; readonly database: number; readonly timeoutMs: number }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisServerAddress[]; readonly name: string; readonly password: string | null; readonly timeoutMs: number };

/** The filter's typed_config in http_filters. */
export interface MirrorFilterConfig {
  readonly redis: ReadonlyMap<string, RedisConnectionModel>;
  readonly maxInflightPerCluster: number | null;
}

export type MirrorTarget =
  | { readonly kind: 'cluster'; readonly name: string }
  | { readonly kind: 'cluster_header'; readonly header: string }
  /** A URL with no cluster defined; the proxy makes the pool itself. */
  | { readonly kind: 'host'; readonly url: string; readonly host: string; readonly port: number };

export type MirrorSampling =
  | { readonly kind: 'all' }
  | { readonly kind: 'random'; readonly fraction: RuntimeFraction }
  | { readonly kind: 'every_nth'; readonly n: number }
  | {
      readonly kind: 'consistent';
      readonly fraction: FractionalPercent;
      readonly key: { readonly kind: 'header' | 'cookie'; readonly name: string } | { readonly kind: 'source_ip' };
    };

export interface MirrorLimit {
  readonly count: number;
  readonly windowMs: number;
  readonly store: 'local' | 'redis';
  /** Set when store is redis: the connection, resolved or named (resolved against the filter config). */
  readonly redis: RedisConnectionModel | { readonly kind: 'named'; readonly name: string } | null;
  readonly onRedisError: 'skip' | 'allow';
  readonly key: string;
}

/** One extended mirror policy (MirrorPerRoute.policies[i]). */
export interface ExtMirrorPolicy {
  readonly name: string;
  readonly target: MirrorTarget;
  readonly sampling: MirrorSampling;
  readonly limit: MirrorLimit | null;
  readonly mode: 'async' | 'sync';
  readonly syncTimeoutMs: number;
  readonly forwardBody: boolean;
  /** 0: no limit beyond the shadow buffer cap. */
  readonly maxBodyBytes: number;
  readonly timeouts: { readonly connectMs: number; readonly sendMs: number; readonly readMs: number };
  readonly retry: { readonly count: number; readonly onConnectFailure: boolean; readonly onReset: boolean; readonly on5xx: boolean } | null;
  readonly path: { readonly value: string; readonly mode: 'replace' | 'prefix' } | null;
  readonly requestHeadersMutations: readonly HeaderMutation[];
  readonly markerHeader: string | null;
  /** null: every method. */
  readonly methods: ReadonlySet<string> | null;
  readonly hooks: MirrorHooksConfig | null;
  readonly disableShadowHostSuffixAppend: boolean;
  readonly hostRewriteLiteral: string | null;
}

export interface MirrorHooksConfig {
  /** As written in config; located in an allowed --hooks-dir when the policy is compiled. */
  readonly module: string;
  readonly timeoutMs: number;
  readonly maxResponseBodyBytes: number;
  /** Field path of the hooks message, for errors found when the module is loaded. */
  readonly path: string;
}
