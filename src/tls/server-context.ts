import type { X509Certificate } from 'node:crypto';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import type { DownstreamTlsContext } from '../config/transport-model';
import { type CertificateDetails, type CertificateEntry, chainsToTrusted, firstCertificateDetails, parsePemCertificates } from './certificates';
import { LiveTlsState } from './live-state';
import type { TlsMaterial } from './material';
import { EXPIRY_CODES, chainVerifyError, countHandshake, peerChain } from './peer';
import { type SanPredicate, compileSanMatchers, dnsNameMatch, parseSubjectAltNames } from './san-match';
import type { SecretStore } from './secret-store';
import { NO_SSL_COUNTERS, type SslCounters } from './ssl-counters';
import { secureContextParams } from './tls-params';

// A listener filter chain's DownstreamTlsContext, as Node's TLS server side needs it.
//
// Where Envoy refuses a client: BoringSSL's custom verify callback rejects a bad client chain
// inside the handshake. Node gives no such hook: OpenSSL's verify callback in Node accepts
// every chain and leaves the verdict for JavaScript after the handshake. So:
//   - a missing certificate where one is required is refused by OpenSSL in the handshake, as in
//     Envoy (requestCert + rejectUnauthorized set SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
//   - a chain that does not verify, or SANs that do not match, are refused by verifyPeer() right
//     after the handshake, before a byte of application data is read. With TLS 1.3 a client sees
//     this the same way under Envoy (its handshake ends before the server reads its
//     certificate); with TLS 1.2 it sees a close after the handshake instead of an alert in it.

export interface ServerTlsContextOptions {
  readonly store: SecretStore;
  readonly counters?: SslCounters;
}

/** Options for `new tls.TLSSocket(socket, { isServer: true, ...options })`. */
export interface ServerSocketOptions {
  readonly secureContext: tls.SecureContext;
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
  /** Absent: no ALPN in the ServerHello. */
  readonly ALPNProtocols?: string[];
  /** Present when the context has several certificates: picks one by the client's SNI. */
  readonly SNICallback?: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
}

export type PeerFailure = 'fail_verify_no_cert' | 'fail_verify_error' | 'fail_verify_san';

/** verifyPeer's answer: accept, or why the connection must be closed. */
export type PeerVerdict = 'ok' | { readonly failure: PeerFailure; readonly detail: string };

interface ServerState {
  /** The first is the default certificate. */
  readonly certs: readonly { readonly context: tls.SecureContext; readonly dnsNames: readonly string[] }[];
  readonly trusted: readonly X509Certificate[] | null;
  readonly sanCheck: SanPredicate | null;
  readonly allowExpired: boolean;
  readonly validated: boolean;
  readonly entry: CertificateEntry;
}

export class ServerTlsContext {
  readonly #config: DownstreamTlsContext;
  readonly #counters: SslCounters;
  readonly #live: LiveTlsState<ServerState>;

  /** Throws when a context without SDS secrets cannot be built (a file unreadable, a key that does not fit). */
  constructor(config: DownstreamTlsContext, options: ServerTlsContextOptions) {
    this.#config = config;
    this.#counters = options.counters ?? NO_SSL_COUNTERS;
    this.#live = new LiveTlsState(config.common, options.store, (m) => this.#build(m));
    this.#live.onUpdate(() => this.#counters.inc('server_ssl_socket_factory.ssl_context_update_by_sds'));
  }

  /** False while an SDS secret has not arrived: Envoy keeps such a listener from serving. */
  get ready(): boolean {
    return this.#live.current !== null;
  }

  /** Why the context is not ready, or why its last rebuild failed (it then keeps the previous one). */
  get error(): string | null {
    return this.#live.error;
  }

  /** Calls `listener` after each rebuild (a secret arrived or changed, a watched file changed). */
  onUpdate(listener: () => void): () => void {
    return this.#live.onUpdate(listener);
  }

  /**
   * Options for the TLS socket of one new connection, from the current certificates; null while
   * not ready (the connection is then closed, as Envoy resets it).
   * `offeredAlpn` is the client's ALPN list when the ClientHello was inspected: Envoy answers a
   * client that shares no protocol with alpn_protocols without ALPN, where Node would fail the
   * handshake, so knowing the offer lets the ALPN extension be left out instead. Without it a
   * client offering only other protocols fails the handshake.
   */
  socketOptions(offeredAlpn?: readonly string[] | null): ServerSocketOptions | null {
    const st = this.#live.current;
    if (!st) {
      this.#counters.inc('server_ssl_socket_factory.downstream_context_secrets_not_ready');
      return null;
    }
    const alpn = this.#config.common.alpnProtocols;
    const offerShared = offeredAlpn == null || alpn.some((p) => offeredAlpn.includes(p));
    return {
      secureContext: st.certs[0]!.context,
      requestCert: this.#config.requireClientCertificate || st.validated,
      rejectUnauthorized: this.#config.requireClientCertificate,
      ...(alpn.length > 0 && offerShared ? { ALPNProtocols: [...alpn] } : {}),
      ...(st.certs.length > 1 ? { SNICallback: (name, cb) => cb(null, pickCertificate(st, name)) } : {}),
    };
  }

  /**
   * Envoy's verdict on the client, to take when the socket emits 'secure' and before reading
   * from it; anything but 'ok' means destroy the socket. Counts `ssl.handshake` (and its tags)
   * or the failure, with `ssl.connection_error`.
   */
  verifyPeer(socket: tls.TLSSocket): PeerVerdict {
    const st = this.#live.current;
    const verdict = st ? this.#judge(st, socket) : { failure: 'fail_verify_error' as const, detail: 'no TLS context' };
    if (verdict === 'ok') countHandshake(this.#counters, socket);
    else {
      this.#counters.inc(`ssl.${verdict.failure}`);
      this.#counters.inc('ssl.connection_error');
    }
    return verdict;
  }

  /**
   * Runs an accepted connection through TLS with this context: socketOptions, then verifyPeer at
   * 'secure'. `onSecure` gets the socket once the client passed; a connection that fails the
   * handshake or verification is destroyed and counted, and so is one arriving while the
   * context is not ready (then null is returned). `raw` must be paused, with any bytes read
   * from it for inspection put back (unshift): a flowing socket would lose them.
   */
  accept(raw: net.Socket, onSecure: (socket: tls.TLSSocket) => void, offeredAlpn?: readonly string[] | null): tls.TLSSocket | null {
    const options = this.socketOptions(offeredAlpn);
    if (!options) {
      raw.destroy();
      return null;
    }
    const socket = new tls.TLSSocket(raw, { isServer: true, ...options });
    let secure = false;
    socket.on('error', (err) => {
      if (!secure) this.handshakeFailed(err);
      socket.destroy();
    });
    socket.once('secure', () => {
      secure = true;
      if (this.verifyPeer(socket) === 'ok') onSecure(socket);
      else socket.destroy();
    });
    return socket;
  }

  /** The socket emitted 'error' before 'secure': counts the failed handshake. */
  handshakeFailed(err: Error & { code?: string }): void {
    if (err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') this.#counters.inc('ssl.fail_verify_no_cert');
    this.#counters.inc('ssl.connection_error');
  }

  /** This context's entry of the admin `/certs` page. */
  certificates(): CertificateEntry {
    return this.#live.current?.entry ?? { ca_cert: [], cert_chain: [] };
  }

  close(): void {
    this.#live.close();
  }

  #judge(st: ServerState, socket: tls.TLSSocket): PeerVerdict {
    const peer = socket.getPeerX509Certificate();
    if (!peer) {
      if (this.#config.requireClientCertificate) return { failure: 'fail_verify_no_cert', detail: 'no client certificate' };
      this.#counters.inc('ssl.no_certificate');
      return 'ok';
    }
    if (st.trusted) {
      const err = chainVerifyError(socket);
      if (err && !(st.allowExpired && EXPIRY_CODES.has(err.code) && chainsToTrusted(peerChain(socket), st.trusted))) {
        return { failure: 'fail_verify_error', detail: err.code };
      }
    }
    if (st.sanCheck && !st.sanCheck(parseSubjectAltNames(peer.subjectAltName))) {
      return { failure: 'fail_verify_san', detail: 'no subject alternative name matched' };
    }
    return 'ok';
  }

  #build(m: TlsMaterial): ServerState {
    if (m.certificates.length === 0) throw new Error('a server TLS context needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)');
    const params = secureContextParams(this.#config.common.tlsParams, 'server');
    const v = m.validation;
    const certs = m.certificates.map((c) => ({
      context: tls.createSecureContext({ ...params, cert: c.chain, key: c.key, passphrase: c.passphrase, ...(v?.ca ? { ca: v.ca } : {}) }),
      dnsNames: dnsSans(c.chain),
    }));
    const now = Date.now();
    const chain: CertificateDetails[] = [];
    m.certificates.forEach((c) => {
      const d = firstCertificateDetails(c.chain, c.chainPath, now);
      if (d) chain.push(d);
    });
    const ca = v?.ca ? firstCertificateDetails(v.ca, v.caPath ?? '', now) : null;
    return {
      certs,
      trusted: v?.ca ? parsePemCertificates(v.ca) : null,
      sanCheck: v ? compileSanMatchers(v.sanMatchers) : null,
      allowExpired: v?.allowExpired ?? false,
      validated: v !== null,
      entry: { ca_cert: ca ? [ca] : [], cert_chain: chain },
    };
  }
}

function dnsSans(chain: Buffer): string[] {
  const leaf = parsePemCertificates(chain)[0];
  return leaf ? parseSubjectAltNames(leaf.subjectAltName).filter((s) => s.type === 'DNS').map((s) => s.value) : [];
}

/** Envoy's choice among several server certificates: an exact SAN for the SNI, else a wildcard one, else the first. */
function pickCertificate(st: ServerState, servername: string): tls.SecureContext {
  const name = servername.toLowerCase();
  const exact = st.certs.find((c) => c.dnsNames.some((d) => d.toLowerCase() === name));
  if (exact) return exact.context;
  const wildcard = st.certs.find((c) => c.dnsNames.some((d) => dnsNameMatch(name, d)));
  return (wildcard ?? st.certs[0]!).context;
}

