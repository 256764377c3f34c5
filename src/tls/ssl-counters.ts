// The SSL counters Envoy keeps per listener and per cluster, named as Envoy names them under the
// listener's (`listener.<stat_prefix>.`) or the cluster's (`cluster.<name>.`) scope. The TLS
// contexts count through this interface; the stats registry maps the names onto its metrics.

export type SslCounterName =
  /** A handshake completed and the peer passed verification. */
  | 'ssl.handshake'
  /** A handshake failed, for any reason (verification failures included). */
  | 'ssl.connection_error'
  /** A handshake completed without a peer certificate (none was required). */
  | 'ssl.no_certificate'
  /** The peer sent no certificate although one was required. */
  | 'ssl.fail_verify_no_cert'
  /** The peer's chain did not verify against trusted_ca. */
  | 'ssl.fail_verify_error'
  /** None of the peer's SANs matched match_typed_subject_alt_names. */
  | 'ssl.fail_verify_san'
  | 'ssl.session_reused'
  /** Tagged counters: negotiated version (`TLSv1.3`), cipher (OpenSSL name), ECDH curve (`X25519`, `P-256`). */
  | `ssl.versions.${string}`
  | `ssl.ciphers.${string}`
  | `ssl.curves.${string}`
  /** A context was rebuilt with new certificates (a secret or a watched file changed). */
  | 'server_ssl_socket_factory.ssl_context_update_by_sds'
  | 'client_ssl_socket_factory.ssl_context_update_by_sds'
  /** A connection came while the context still waited for an SDS secret. */
  | 'server_ssl_socket_factory.downstream_context_secrets_not_ready'
  | 'client_ssl_socket_factory.upstream_context_secrets_not_ready';

export interface SslCounters {
  inc(name: SslCounterName): void;
}

/** Counts nothing: for contexts built where no stats scope exists (config checks, tests). */
export const NO_SSL_COUNTERS: SslCounters = { inc: () => {} };
