import type { FractionalPercent, HeaderMutation, RuntimeFraction } from './base-model';

// ── sidemirror's mirror filter (sidemirror.filters.http.mirror.v1) ────────────────────────────

export interface RedisServerAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Redis over TLS. The PEM texts are read from the files the config names; null when not given,
 * and always null where the config is only checked (the control plane reads no sidecar's files).
 */
export interface RedisTlsModel {
  readonly ca: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  readonly serverName: string | null;
}

/** How a connection authenticates and protects itself. */
export interface RedisConnectionSecurity {
  /**
   * The password, from the config, a file or an environment variable; null: none, or (where the
   * config is only checked: the control plane) given by file or variable and not read.
   */
  readonly password: string | null;
  /** Redis 6 ACL user; null: the default user. */
  readonly username: string | null;
  readonly tls: RedisTlsModel | null;
}

export type RedisConnectionModel = RedisConnectionSecurity & (
  | { readonly kind: 'single'; readonly server: RedisServerAddress; readonly database: number; readonly timeoutMs: number }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisServerAddress[]; readonly name: string; readonly timeoutMs: number });

/** The filter's typed_config in http_filters. */
export interface MirrorFilterConfig {
  readonly redis: ReadonlyMap<string, RedisConnectionModel>;
  readonly maxInflightPerCluster: number | null;
}

export type MirrorTarget =
  | { readonly kind: 'cluster'; readonly name: string }
  | { readonly kind: 'cluster_header'; readonly header: string; readonly allowed: AllowedClusters }
  /** A URL with no cluster defined; the proxy makes the pool itself. */
  | { readonly kind: 'host'; readonly url: string; readonly host: string; readonly port: number };

/** The clusters a cluster_header target may name: exact names, or names starting with a prefix. */
export interface AllowedClusters {
  readonly names: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

export type MirrorSampling =
  | { readonly kind: 'all' }
  | { readonly kind: 'random'; readonly fraction: RuntimeFraction }
  | { readonly kind: 'every_nth'; readonly n: number }
  | {
      readonly kind: 'consistent';
      readonly fraction: FractionalPercent;
      readonly key: { readonly kind: 'header' | 'cookie'; readonly name: string } | { readonly kind: 'source_ip' };
    };

/** A connection of the mirror filter's `redis` map, by name; `path` is where the config names it. */
export interface NamedRedisConnection {
  readonly kind: 'named';
  readonly name: string;
  readonly path: string;
}

export interface MirrorLimit {
  readonly count: number;
  readonly windowMs: number;
  readonly store: 'local' | 'redis';
  /** Set when store is redis: the connection, resolved or named (resolved against the filter config). */
  readonly redis: RedisConnectionModel | NamedRedisConnection | null;
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
  readonly compare: CompareConfig | null;
}

/** A policy's `compare`: shadow testing against the primary (src/compare). */
export interface CompareConfig {
  readonly referenceCluster: string | null;
  readonly methods: ReadonlySet<string>;
  readonly sampling: FractionalPercent | null;
  readonly headers: { readonly ignoreAll: boolean; readonly volatile: readonly string[]; readonly compare: readonly string[] };
  readonly body: {
    readonly format: 'auto' | 'json' | 'text' | 'bytes';
    readonly unorderedArrays: readonly string[];
    readonly numberTolerance: number;
    readonly maxCaptureBytes: number;
    readonly maxBytes: number;
  };
  /** Field path rules (path-pattern.ts), checked when decoded. */
  readonly ignore: readonly string[];
  readonly thresholds: { readonly relative: number; readonly absolute: number };
  readonly timeoutMs: number;
  readonly maxPending: number;
  readonly store: {
    readonly maxBytes: number;
    readonly samplesPerField: number;
    readonly sampleBodyBytes: number;
    readonly redactHeaders: readonly string[];
    readonly redactBodyPaths: readonly string[];
  };
  readonly fleet: {
    /** Resolved against the filter's `redis` map, or named until it is. */
    readonly redis: RedisConnectionModel | NamedRedisConnection;
    readonly intervalMs: number;
    readonly keyPrefix: string;
  } | null;
}

export interface MirrorHooksConfig {
  /** As written in config; located in an allowed --hooks-dir when the policy is compiled. */
  readonly module: string;
  readonly timeoutMs: number;
  readonly maxResponseBodyBytes: number;
  /** Field path of the hooks message, for errors found when the module is loaded. */
  readonly path: string;
}
