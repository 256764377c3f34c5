import type { StringMatcher } from './matcher-model';

// The transport half of the model: TLS contexts (Envoy's transport_sockets.tls.v3), secrets,
// filter chain matching and the HTTP/2 settings of codecs and upstream pools.

/**
 * core.v3.DataSource. The runtime (src/tls) reads and watches the files; the sidecar's decoder
 * reads each once only to refuse a config whose files are missing or not PEM.
 */
export type DataSource =
  | { readonly kind: 'filename'; readonly path: string }
  | { readonly kind: 'inline'; readonly bytes: Buffer }
  | { readonly kind: 'environment_variable'; readonly name: string };

/** tls.v3.TlsCertificate: a chain and its key (PEM). */
export interface TlsCertificate {
  readonly certificateChain: DataSource;
  readonly privateKey: DataSource;
  readonly password: DataSource | null;
}

/** tls.v3.SubjectAltNameMatcher (the deprecated untyped match_subject_alt_names become one per type). */
export interface SanMatcher {
  readonly sanType: 'DNS' | 'URI' | 'IP_ADDRESS' | 'EMAIL';
  readonly matcher: StringMatcher;
}

/** tls.v3.CertificateValidationContext: what a peer's certificate must be. */
export interface CertificateValidationContext {
  /** null: the chain is not verified (Envoy's rule, the opposite of Node's default). */
  readonly trustedCa: DataSource | null;
  /** Empty: any SAN; else one of the peer's SANs must match one of these. */
  readonly matchTypedSubjectAltNames: readonly SanMatcher[];
  readonly allowExpiredCertificate: boolean;
}

/**
 * tls.v3.SdsSecretConfig: a secret by name, from bootstrap static_resources.secrets ('static',
 * no sds_config) or from the ADS stream ('ads', sds_config: {ads: {}}).
 */
export interface SdsSecretConfig {
  readonly name: string;
  readonly source: 'static' | 'ads';
}

export type TlsVersion = 'TLSv1_0' | 'TLSv1_1' | 'TLSv1_2' | 'TLSv1_3';

/** tls.v3.TlsParameters; null versions are Envoy's defaults (min 1.2; max 1.2 client, 1.3 server). */
export interface TlsParams {
  readonly minVersion: TlsVersion | null;
  readonly maxVersion: TlsVersion | null;
  /** OpenSSL cipher names (BoringSSL's `[A|B]` groups flattened, in order); empty: Envoy's default list. */
  readonly cipherSuites: readonly string[];
  readonly ecdhCurves: readonly string[];
}

/** tls.v3.CommonTlsContext. */
export interface CommonTlsContext {
  readonly tlsParams: TlsParams;
  readonly tlsCertificates: readonly TlsCertificate[];
  readonly tlsCertificateSdsSecretConfigs: readonly SdsSecretConfig[];
  /** validation_context, or combined_validation_context.default_validation_context. */
  readonly validationContext: CertificateValidationContext | null;
  /** validation_context_sds_secret_config, or the combined context's; merged over validationContext. */
  readonly validationContextSdsSecretConfig: SdsSecretConfig | null;
  /** Offered (client) or accepted (server) in this order; empty: no ALPN at all. */
  readonly alpnProtocols: readonly string[];
}

/** tls.v3.DownstreamTlsContext, on a filter chain's transport_socket. */
export interface DownstreamTlsContext {
  readonly common: CommonTlsContext;
  readonly requireClientCertificate: boolean;
}

/** tls.v3.UpstreamTlsContext, on a cluster's transport_socket or a transport_socket_matches entry. */
export interface UpstreamTlsContext {
  readonly common: CommonTlsContext;
  /** SNI to send; null: none (unless auto_sni). */
  readonly sni: string | null;
}

/** A Secret resource (bootstrap static_resources.secrets or SDS). */
export type Secret =
  | { readonly name: string; readonly kind: 'tls_certificate'; readonly tlsCertificate: TlsCertificate }
  | { readonly name: string; readonly kind: 'validation_context'; readonly validationContext: CertificateValidationContext };

/** listener.v3.FilterChainMatch, the fields sidemirror matches on. */
export interface FilterChainMatch {
  /** SNI names, exact or `*.suffix`; empty: any. */
  readonly serverNames: readonly string[];
  /** 'tls' or 'raw_buffer' (the tls_inspector tells); null: any. */
  readonly transportProtocol: string | null;
  /** ALPN offered by the client (tls_inspector); empty: any. */
  readonly applicationProtocols: readonly string[];
}

/** core.v3.Http2ProtocolOptions, the fields sidemirror applies. */
export interface Http2Settings {
  readonly maxConcurrentStreams: number;
  readonly initialStreamWindowSize: number;
  readonly initialConnectionWindowSize: number;
}

/** How a cluster picks its upstream protocol (HttpProtocolOptions, or the legacy cluster field). */
export type UpstreamProtocol =
  | { readonly kind: 'http1' }
  | { readonly kind: 'http2'; readonly http2: Http2Settings }
  /** use_downstream_protocol_config: HTTP/2 for HTTP/2 downstreams, HTTP/1.1 otherwise. */
  | { readonly kind: 'downstream'; readonly http2: Http2Settings }
  /** auto_config: ALPN (h2, http/1.1) on a TLS cluster. */
  | { readonly kind: 'auto'; readonly http2: Http2Settings };

/** cluster.v3.Cluster.TransportSocketMatch: endpoints whose metadata has every `match` entry use `tls`. */
export interface TransportSocketMatch {
  readonly name: string;
  readonly match: ReadonlyMap<string, string>;
  /** null: plaintext (envoy.transport_sockets.raw_buffer). */
  readonly tls: UpstreamTlsContext | null;
}
