import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { UpstreamTlsContext } from '../config/transport-model';
import { type CertificateEntry, firstCertificateDetails } from './certificates';
import { LiveTlsState } from './live-state';
import type { TlsMaterial } from './material';
import { X509_VERIFY_CODES, countHandshake } from './peer';
import { type SanPredicate, compileSanMatchers, parseSubjectAltNames } from './san-match';
import type { SecretStore } from './secret-store';
import { NO_SSL_COUNTERS, type SslCounters } from './ssl-counters';
import { secureContextParams } from './tls-params';

// A cluster's UpstreamTlsContext, as Node's TLS client side needs it. Envoy's rules, which are
// not Node's defaults:
//   - the server's chain is verified only when the validation context has trusted_ca; without it
//     any certificate is accepted (Node would verify against its root store);
//   - the host name is never compared with the certificate: names are checked only through
//     match_typed_subject_alt_names (Node would check the host);
//   - SNI is the configured `sni` or nothing (undici and http2.connect would send the host);
//   - TLS 1.2 is both the minimum and the maximum unless tls_params says otherwise.
// A chain or SAN failure makes Node destroy the socket before 'secureConnect', so no request is
// ever written on it: what Envoy's in-handshake rejection guarantees too.

export interface ClientTlsContextOptions {
  readonly store: SecretStore;
  readonly counters?: SslCounters;
}

export interface ClientConnectTarget {
  /** Where to connect (a name or an address); never used as SNI. */
  readonly host: string;
  readonly port: number;
  /** ALPN to offer instead of alpn_protocols (say ['h2'] for an HTTP/2 cluster). */
  readonly alpn?: readonly string[];
  /** An already connected transport to run TLS over (a CONNECT tunnel). */
  readonly socket?: Duplex;
}

/** The context waits for an SDS secret: Envoy fails such an upstream connection. */
export class TlsContextNotReadyError extends Error {
  readonly code = 'ERR_TLS_CONTEXT_NOT_READY';
}

/** A peer certificate whose SANs match none of match_typed_subject_alt_names. */
export class SanMismatchError extends Error {
  readonly code = 'ERR_TLS_SAN_MISMATCH';
}

interface ClientState {
  readonly secureContext: tls.SecureContext;
  readonly verifyChain: boolean;
  readonly sanCheck: SanPredicate | null;
  readonly entry: CertificateEntry;
}

/** The callback type undici's Client/Pool `connect` option takes (undici's buildConnector.connector). */
export type UndiciConnector = (
  options: { readonly hostname: string; readonly port: string; readonly httpSocket?: Duplex },
  callback: (...args: [null, tls.TLSSocket] | [Error, null]) => void,
) => void;

export class ClientTlsContext {
  readonly #config: UpstreamTlsContext;
  readonly #counters: SslCounters;
  readonly #live: LiveTlsState<ClientState>;

  /** Throws when a context without SDS secrets cannot be built (a file unreadable, a key that does not fit). */
  constructor(config: UpstreamTlsContext, options: ClientTlsContextOptions) {
    this.#config = config;
    this.#counters = options.counters ?? NO_SSL_COUNTERS;
    this.#live = new LiveTlsState(config.common, options.store, (m) => this.#build(m));
    this.#live.onUpdate(() => this.#counters.inc('client_ssl_socket_factory.ssl_context_update_by_sds'));
  }

  get ready(): boolean {
    return this.#live.current !== null;
  }

  get error(): string | null {
    return this.#live.error;
  }

  onUpdate(listener: () => void): () => void {
    return this.#live.onUpdate(listener);
  }

  /**
   * tls.connect options from the current certificates, or null while not ready. They hold no
   * servername when `sni` is null; undici's default connector and http2.connect would then put
   * the host in SNI, so give them connect() (http2 `createConnection`) or undiciConnector().
   */
  connectOptions(o: { readonly alpn?: readonly string[] } = {}): tls.ConnectionOptions | null {
    const st = this.#live.current;
    if (!st) return null;
    const alpn = o.alpn ?? this.#config.common.alpnProtocols;
    const sanCheck = st.sanCheck;
    return {
      secureContext: st.secureContext,
      rejectUnauthorized: st.verifyChain,
      checkServerIdentity: (_host, cert) => {
        // Node calls this only for a chain that verified: the host is not Envoy's business.
        if (!sanCheck || sanCheck(parseSubjectAltNames(cert.subjectaltname))) return undefined;
        return new SanMismatchError('no subject alternative name of the upstream certificate matched');
      },
      ...(this.#config.sni !== null ? { servername: this.#config.sni } : {}),
      ...(alpn.length > 0 ? { ALPNProtocols: [...alpn] } : {}),
    };
  }

  /**
   * Opens a TLS connection with exactly these options (usable as http2.connect's
   * `createConnection`) and counts its handshake. Throws TlsContextNotReadyError while not ready.
   */
  connect(target: ClientConnectTarget): tls.TLSSocket {
    const options = this.connectOptions({ alpn: target.alpn });
    if (!options) {
      this.#counters.inc('client_ssl_socket_factory.upstream_context_secrets_not_ready');
      throw new TlsContextNotReadyError(`upstream TLS context is not ready: ${this.error ?? 'no certificates'}`);
    }
    const socket = tls.connect({ ...options, host: target.host, port: target.port, ...(target.socket ? { socket: target.socket } : {}) });
    let settled = false;
    // A refused or unreachable address is no TLS failure.
    let connected = target.socket !== undefined;
    socket.once('connect', () => (connected = true));
    socket.once('secureConnect', () => {
      settled = true;
      countHandshake(this.#counters, socket);
    });
    socket.once('error', (err: Error & { code?: string }) => {
      if (settled || !connected) return;
      settled = true;
      if (err instanceof SanMismatchError) this.#counters.inc('ssl.fail_verify_san');
      else if (err.code !== undefined && X509_VERIFY_CODES.has(err.code)) this.#counters.inc('ssl.fail_verify_error');
      this.#counters.inc('ssl.connection_error');
    });
    return socket;
  }

  /**
   * undici's `connect` option: connect() with a timeout, TCP_NODELAY and keep-alive as undici's
   * own connector sets them. The callback gets the socket after its handshake, or the error.
   */
  undiciConnector(o: { readonly alpn?: readonly string[]; readonly timeoutMs?: number } = {}): UndiciConnector {
    return (opts, callback) => {
      let socket: tls.TLSSocket;
      try {
        socket = this.connect({ host: opts.hostname, port: Number(opts.port) || 443, alpn: o.alpn, socket: opts.httpSocket });
      } catch (err) {
        callback(err as Error, null);
        return;
      }
      if (!opts.httpSocket) socket.setNoDelay(true).setKeepAlive(true, 60_000);
      let done = false;
      const timer = o.timeoutMs ? setTimeout(() => fail(Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), o.timeoutMs) : null;
      const fail = (err: Error): void => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        socket.destroy();
        callback(err, null);
      };
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        socket.removeListener('error', fail);
        callback(null, socket);
      });
    };
  }

  /** This context's entry of the admin `/certs` page. */
  certificates(): CertificateEntry {
    return this.#live.current?.entry ?? { ca_cert: [], cert_chain: [] };
  }

  close(): void {
    this.#live.close();
  }

  #build(m: TlsMaterial): ClientState {
    const v = m.validation;
    // Envoy's client contexts use one certificate, the first.
    const cert = m.certificates[0];
    const secureContext = tls.createSecureContext({
      ...secureContextParams(this.#config.common.tlsParams, 'client'),
      ...(cert ? { cert: cert.chain, key: cert.key, passphrase: cert.passphrase } : {}),
      ...(v?.ca ? { ca: v.ca } : {}),
    });
    const now = Date.now();
    const leaf = cert ? firstCertificateDetails(cert.chain, cert.chainPath, now) : null;
    const ca = v?.ca ? firstCertificateDetails(v.ca, v.caPath ?? '', now) : null;
    return {
      secureContext,
      verifyChain: v?.ca != null,
      sanCheck: v ? compileSanMatchers(v.sanMatchers) : null,
      entry: { ca_cert: ca ? [ca] : [], cert_chain: leaf ? [leaf] : [] },
    };
  }
}
