import { X509Certificate } from 'node:crypto';
import { parseSubjectAltNames } from './san-match';

// Certificates read from PEM, and what Envoy's admin `/certs` shows of them
// (envoy.admin.v3.Certificates, in its proto3 JSON form: uint64 as a string, RFC 3339 times).

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, in order; blocks that do not parse are skipped. */
export function parsePemCertificates(pem: Buffer | string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const m of pem.toString('latin1').matchAll(PEM_CERT)) {
    try {
      out.push(new X509Certificate(m[0]));
    } catch {
      // OpenSSL, loading the same bundle into the secure context, reports what is wrong with it.
    }
  }
  return out;
}

export type SubjectAlternateName = { readonly dns: string } | { readonly uri: string } | { readonly ip_address: string };

export interface CertificateDetails {
  readonly path: string;
  /** Lower-case hex without leading zero bytes, as BoringSSL's BN_bn2hex writes it. */
  readonly serial_number: string;
  /** DNS names first, then URIs, then IP addresses. */
  readonly subject_alt_names: readonly SubjectAlternateName[];
  /** Whole days left, 0 once expired. */
  readonly days_until_expiration: string;
  readonly valid_from: string;
  readonly expiration_time: string;
}

/** One TLS context's entry of `/certs`: its trusted CA (the bundle's first certificate) and its certificates (each chain's leaf). */
export interface CertificateEntry {
  readonly ca_cert: readonly CertificateDetails[];
  readonly cert_chain: readonly CertificateDetails[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

export function certificateDetails(cert: X509Certificate, path: string, now: number = Date.now()): CertificateDetails {
  const sans = parseSubjectAltNames(cert.subjectAltName);
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  return {
    path,
    serial_number: serialHex(cert.serialNumber),
    subject_alt_names: [
      ...sans.filter((s) => s.type === 'DNS').map((s) => ({ dns: s.value })),
      ...sans.filter((s) => s.type === 'URI').map((s) => ({ uri: s.value })),
      ...sans.filter((s) => s.type === 'IP_ADDRESS').map((s) => ({ ip_address: s.value })),
    ],
    days_until_expiration: String(notAfter > now ? Math.floor((notAfter - now) / DAY_MS) : 0),
    valid_from: rfc3339(notBefore),
    expiration_time: rfc3339(notAfter),
  };
}

function serialHex(serial: string): string {
  let hex = serial.toLowerCase();
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2);
  return hex;
}

function rfc3339(ms: number): string {
  // Protobuf's JSON form of a Timestamp: no fractional part when there is none.
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace('.000Z', 'Z') : '';
}

/** The details of the first certificate in `pem`, or null when there is none. */
export function firstCertificateDetails(pem: Buffer, path: string, now?: number): CertificateDetails | null {
  const first = parsePemCertificates(pem)[0];
  return first ? certificateDetails(first, path, now) : null;
}

/**
 * Whether `chain[0]` leads, through certificates of `chain` (as the peer sent them), to one of
 * `trusted`, by issuer names and signatures alone. For allow_expired_certificate: OpenSSL's own
 * verdict then cannot be used, since it reports only its last error and an expiry can hide an
 * unknown issuer.
 */
export function chainsToTrusted(chain: readonly X509Certificate[], trusted: readonly X509Certificate[]): boolean {
  const leaf = chain[0];
  if (!leaf) return false;
  const trustedPrints = new Set(trusted.map((t) => t.fingerprint256));
  let cert = leaf;
  for (let depth = 0; depth < 16; depth++) {
    if (trustedPrints.has(cert.fingerprint256)) return true;
    const anchor = trusted.find((t) => issued(t, cert));
    if (anchor) return true;
    const next = chain.find((c) => c !== cert && c.ca && issued(c, cert));
    if (!next) return false;
    cert = next;
  }
  return false;
}

function issued(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
