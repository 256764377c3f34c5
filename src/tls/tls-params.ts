import type * as tls from 'node:tls';
import type { TlsParams, TlsVersion } from '../config/transport-model';

// Envoy's TlsParameters with its defaults, as Node secure-context options.

/**
 * Envoy's default cipher list for TLS 1.0–1.2 (non-FIPS builds; the same for servers and
 * clients). Envoy writes two BoringSSL equal-preference groups, [ECDHE-ECDSA-AES128-GCM-SHA256|
 * ECDHE-ECDSA-CHACHA20-POLY1305] and the same for RSA; OpenSSL has no such groups, so each group
 * is listed in its written order. TLS 1.3 suites are not configurable in Envoy and keep the
 * library's defaults here too (Node's ciphers string without TLS_* names leaves them alone).
 */
export const ENVOY_DEFAULT_CIPHERS: readonly string[] = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
];

/** Envoy's default ECDH curves (non-FIPS builds). */
export const ENVOY_DEFAULT_CURVES: readonly string[] = ['X25519', 'P-256'];

const NODE_VERSION: Record<TlsVersion, tls.SecureVersion> = {
  TLSv1_0: 'TLSv1',
  TLSv1_1: 'TLSv1.1',
  TLSv1_2: 'TLSv1.2',
  TLSv1_3: 'TLSv1.3',
};

export type TlsSide = 'server' | 'client';

/** Versions, ciphers and curves for tls.createSecureContext. */
export function secureContextParams(p: TlsParams, side: TlsSide): tls.SecureContextOptions {
  return {
    minVersion: NODE_VERSION[p.minVersion ?? 'TLSv1_2'],
    maxVersion: NODE_VERSION[p.maxVersion ?? (side === 'server' ? 'TLSv1_3' : 'TLSv1_2')],
    ciphers: openSslCipherList(p.cipherSuites.length > 0 ? p.cipherSuites : ENVOY_DEFAULT_CIPHERS),
    ecdhCurve: (p.ecdhCurves.length > 0 ? p.ecdhCurves : ENVOY_DEFAULT_CURVES).join(':'),
    // BoringSSL servers under Envoy choose by their own list (the groups above aside).
    ...(side === 'server' ? { honorCipherOrder: true } : {}),
  };
}

/** Envoy cipher_suites entries (BoringSSL syntax, `[A|B]` groups allowed) as an OpenSSL list. */
export function openSslCipherList(suites: readonly string[]): string {
  const names: string[] = [];
  for (const s of suites) {
    const group = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1).split('|') : [s];
    for (const n of group) if (n) names.push(n);
  }
  return names.join(':');
}
