import { X509Certificate } from 'node:crypto';
import type * as tls from 'node:tls';
import type { SslCounters } from './ssl-counters';

// What a finished handshake tells about the peer, and the counters it feeds.

/**
 * OpenSSL's verdict on the peer's chain (null: verified). Node computes it during the handshake
 * but, on a server-side TLSSocket made outside tls.Server, publishes it nowhere public
 * (`authorized` stays unset); the handle's verifyError() is what tls.Server itself reads.
 */
export function chainVerifyError(socket: tls.TLSSocket): { readonly code: string } | null {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  if (typeof handle?.verifyError !== 'function') return { code: 'VERIFY_RESULT_UNAVAILABLE' };
  const err = handle.verifyError();
  return err ? { code: err.code ?? err.message } : null;
}

/** The peer's chain as it sent it, leaf first (at most 16 certificates). */
export function peerChain(socket: tls.TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert && cert.raw && out.length < 16 && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    try {
      out.push(new X509Certificate(cert.raw));
    } catch {
      break;
    }
    cert = cert.issuerCertificate;
  }
  return out;
}

/** Codes Node gives an error for an X.509 verification failure (OpenSSL's X509_V_ERR_* names). */
export const X509_VERIFY_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

export const EXPIRY_CODES: ReadonlySet<string> = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** Envoy names curves as BoringSSL does. */
const CURVE_NAMES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** A handshake that passed: `ssl.handshake` and its tagged counters. */
export function countHandshake(counters: SslCounters, socket: tls.TLSSocket): void {
  counters.inc('ssl.handshake');
  if (socket.isSessionReused()) counters.inc('ssl.session_reused');
  const version = socket.getProtocol();
  if (version) counters.inc(`ssl.versions.${version}`);
  const cipher = socket.getCipher()?.name;
  if (cipher) counters.inc(`ssl.ciphers.${cipher}`);
  // Node reports the key exchange on the client side only.
  const curve = (socket.getEphemeralKeyInfo() as { name?: string } | null)?.name;
  if (curve) counters.inc(`ssl.curves.${CURVE_NAMES[curve] ?? curve}`);
}
