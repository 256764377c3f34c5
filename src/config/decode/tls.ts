import * as tls from 'node:tls';
import type {
  CertificateValidationContext,
  CommonTlsContext,
  DownstreamTlsContext,
  SanMatcher,
  SdsSecretConfig,
  Secret,
  TlsCertificate,
  TlsParams,
  TlsVersion,
  UpstreamTlsContext,
} from '../transport-model';
import { validationContextProblems } from '../tls-secrets';
import { type Ctx, type Pb, at, atIndex, each, fail, refuse, stringMatcher, wrapped } from './common';
import { certificatesProblem, dataSourceText, decodeDataSource, keyMatchesCertificate, privateKeyProblem } from './data-source';

// Envoy's TLS contexts (extensions.transport_sockets.tls.v3) and secrets into the model, with the
// checks Envoy makes when it builds them (context_config_impl, server_context_config_impl,
// certificate_validation_context_config_impl). Fields Envoy has and proto/ leaves out are refused
// by name before this runs (envoy-fields.ts).

export const DOWNSTREAM_TLS_TYPE = 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_TYPE = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

type Side = 'server' | 'client';

export function decodeDownstreamTlsContext(d: Pb, ctx: Ctx): DownstreamTlsContext {
  const cctx = at(ctx, 'common_tls_context');
  const common = decodeCommonTlsContext((d.common_tls_context ?? {}) as Pb, cctx, 'server');
  const requireClientCertificate = wrapped(d.require_client_certificate, false);
  // Envoy asks for no client certificate when it has no CA to check one with, whatever this
  // says; sidemirror refuses rather than run a listener that does not do what it is told.
  if (requireClientCertificate && common.validationContextSdsSecretConfig === null && common.validationContext?.trustedCa == null) {
    fail(at(ctx, 'require_client_certificate'), 'needs a validation context with trusted_ca (without one Envoy asks for no client certificate)');
  }
  return { common, requireClientCertificate };
}

export function decodeUpstreamTlsContext(u: Pb, ctx: Ctx): UpstreamTlsContext {
  const common = decodeCommonTlsContext((u.common_tls_context ?? {}) as Pb, at(ctx, 'common_tls_context'), 'client');
  refuse(u, ctx, ['auto_host_sni', 'auto_sni_san_validation']);
  const sni = u.sni ? String(u.sni) : null;
  if (sni !== null) {
    if (Buffer.byteLength(sni, 'utf8') > 255) fail(at(ctx, 'sni'), 'must be at most 255 bytes');
    if (sni.includes('\0')) fail(at(ctx, 'sni'), 'SNI names containing NULL-byte are not allowed');
  }
  return { common, sni };
}

function decodeCommonTlsContext(c: Pb, ctx: Ctx, side: Side): CommonTlsContext {
  const tlsCertificates = each(ctx, c, 'tls_certificates', decodeTlsCertificate);
  const tlsCertificateSdsSecretConfigs = each(ctx, c, 'tls_certificate_sds_secret_configs', decodeSdsSecretConfig);
  const count = tlsCertificates.length + tlsCertificateSdsSecretConfigs.length;
  if (side === 'server' && count === 0) fail(ctx, 'No TLS certificates found for server context');
  if (side === 'server' && tlsCertificates.length > 0 && tlsCertificateSdsSecretConfigs.length > 0) {
    fail(ctx, 'SDS and non-SDS TLS certificates may not be mixed in server contexts');
  }
  if (side === 'client' && count > 1) fail(ctx, 'Multiple TLS certificates are not supported for client contexts');

  let validationContext: CertificateValidationContext | null = null;
  let validationContextSdsSecretConfig: SdsSecretConfig | null = null;
  if (c.validation_context) {
    const vctx = at(ctx, 'validation_context');
    validationContext = decodeValidationContext(c.validation_context as Pb, vctx);
    for (const problem of validationContextProblems(validationContext)) fail(vctx, problem);
  } else if (c.validation_context_sds_secret_config) {
    validationContextSdsSecretConfig = decodeSdsSecretConfig(c.validation_context_sds_secret_config as Pb, at(ctx, 'validation_context_sds_secret_config'));
  } else if (c.combined_validation_context) {
    // Both halves are required (Envoy's proto); the merged context is checked once the secret is known.
    const cv = c.combined_validation_context as Pb;
    const cvctx = at(ctx, 'combined_validation_context');
    if (!cv.default_validation_context) fail(at(cvctx, 'default_validation_context'), 'default_validation_context is required');
    if (!cv.validation_context_sds_secret_config) fail(at(cvctx, 'validation_context_sds_secret_config'), 'validation_context_sds_secret_config is required');
    validationContext = decodeValidationContext((cv.default_validation_context ?? {}) as Pb, at(cvctx, 'default_validation_context'));
    validationContextSdsSecretConfig = decodeSdsSecretConfig((cv.validation_context_sds_secret_config ?? {}) as Pb, at(cvctx, 'validation_context_sds_secret_config'));
  }
  return {
    tlsParams: decodeTlsParams((c.tls_params ?? {}) as Pb, at(ctx, 'tls_params')),
    tlsCertificates,
    tlsCertificateSdsSecretConfigs,
    validationContext,
    validationContextSdsSecretConfig,
    alpnProtocols: alpnProtocols(c, ctx),
  };
}

function alpnProtocols(c: Pb, ctx: Ctx): string[] {
  return ((c.alpn_protocols as string[] | undefined) ?? []).map((p, i) => {
    const n = Buffer.byteLength(String(p), 'utf8');
    // An ALPN protocol id is one to 255 bytes on the wire (RFC 7301).
    if (n === 0 || n > 255) fail(atIndex(ctx, 'alpn_protocols', i), 'Invalid ALPN protocol string (1 to 255 bytes)');
    return String(p);
  });
}

const TLS_VERSIONS = new Set<TlsVersion>(['TLSv1_0', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3']);
const VERSION_ORDER: readonly TlsVersion[] = ['TLSv1_0', 'TLSv1_1', 'TLSv1_2', 'TLSv1_3'];

function tlsVersion(p: Pb, field: string, ctx: Ctx): TlsVersion | null {
  const v = p[field];
  if (v === undefined || v === 'TLS_AUTO') return null;
  if (!TLS_VERSIONS.has(v as TlsVersion)) {
    fail(at(ctx, field), `unknown value ${String(v)}`);
    return null;
  }
  return v as TlsVersion;
}

function decodeTlsParams(p: Pb, ctx: Ctx): TlsParams {
  const minVersion = tlsVersion(p, 'tls_minimum_protocol_version', ctx);
  const maxVersion = tlsVersion(p, 'tls_maximum_protocol_version', ctx);
  if (minVersion && maxVersion && VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
    fail(ctx, `tls_minimum_protocol_version ${minVersion} is above tls_maximum_protocol_version ${maxVersion}: no handshake could succeed`);
  }
  return {
    minVersion,
    maxVersion,
    cipherSuites: cipherSuites(p, ctx),
    ecdhCurves: ((p.ecdh_curves as string[] | undefined) ?? []).map((curve, i) => {
      const name = String(curve);
      if (!knownCurve(name)) fail(atIndex(ctx, 'ecdh_curves', i), `unknown ECDH curve "${name}"`);
      return name;
    }),
  };
}

let knownCiphers: Set<string> | undefined;

/**
 * cipher_suites as OpenSSL names, in order. Envoy's BoringSSL syntax for equal-preference groups
 * (`[A|B]`, as in its default list) is flattened, first member first; a name OpenSSL does not
 * know is refused as Envoy refuses one BoringSSL does not. TLS 1.3 suites cannot be chosen here.
 */
function cipherSuites(p: Pb, ctx: Ctx): string[] {
  const known = (knownCiphers ??= new Set(tls.getCiphers()));
  const out: string[] = [];
  ((p.cipher_suites as string[] | undefined) ?? []).forEach((entry, i) => {
    for (const name of String(entry).split(/[:|[\]]/).map((s) => s.trim()).filter(Boolean)) {
      const ictx = atIndex(ctx, 'cipher_suites', i);
      if (/^TLS_/i.test(name)) fail(ictx, `"${name}" is a TLS 1.3 suite; cipher_suites applies to TLS 1.0-1.2 only`);
      else if (!known.has(name.toLowerCase())) fail(ictx, `unknown cipher suite "${name}"`);
      out.push(name);
    }
  });
  return out;
}

const curveCache = new Map<string, boolean>();

function knownCurve(name: string): boolean {
  let ok = curveCache.get(name);
  if (ok === undefined) {
    try {
      tls.createSecureContext({ ecdhCurve: name });
      ok = /^[A-Za-z0-9_-]+$/.test(name);
    } catch {
      ok = false;
    }
    curveCache.set(name, ok);
  }
  return ok;
}

function decodeTlsCertificate(c: Pb, ctx: Ctx): TlsCertificate {
  const cctx = at(ctx, 'certificate_chain');
  const kctx = at(ctx, 'private_key');
  const pctx = at(ctx, 'password');
  const certificateChain = decodeDataSource(c.certificate_chain as Pb | undefined, cctx, false);
  const privateKey = decodeDataSource(c.private_key as Pb | undefined, kctx, false);
  const password = decodeDataSource(c.password as Pb | undefined, pctx, false);
  if (!certificateChain || !privateKey) fail(ctx, 'a certificate needs both certificate_chain and private_key');
  const chainText = dataSourceText(certificateChain, cctx);
  const keyText = dataSourceText(privateKey, kctx);
  const passText = dataSourceText(password, pctx);
  const chainProblem = chainText === null ? null : certificatesProblem(chainText);
  if (chainProblem) fail(cctx, chainProblem);
  // An encrypted key can be checked only where its password can be read too.
  const passphrase = password ? passText : null;
  const keyCheckable = keyText !== null && (password === null || passText !== null);
  const keyProblem = keyCheckable ? privateKeyProblem(keyText, passphrase) : null;
  if (keyProblem) fail(kctx, keyProblem);
  if (chainText !== null && keyCheckable && !chainProblem && !keyProblem && !keyMatchesCertificate(chainText, keyText, passphrase)) {
    fail(kctx, "is not the key of certificate_chain's certificate");
  }
  return {
    certificateChain: certificateChain ?? { kind: 'inline', bytes: Buffer.alloc(0) },
    privateKey: privateKey ?? { kind: 'inline', bytes: Buffer.alloc(0) },
    password,
  };
}

const SAN_TYPES = new Set<SanMatcher['sanType']>(['DNS', 'URI', 'IP_ADDRESS', 'EMAIL']);
/** What Envoy expands a legacy, untyped SAN matcher into. */
const LEGACY_SAN_TYPES: readonly SanMatcher['sanType'][] = ['DNS', 'URI', 'EMAIL', 'IP_ADDRESS'];

export function decodeValidationContext(v: Pb, ctx: Ctx): CertificateValidationContext {
  const tctx = at(ctx, 'trusted_ca');
  const trustedCa = decodeDataSource(v.trusted_ca as Pb | undefined, tctx, false);
  const caText = dataSourceText(trustedCa, tctx);
  if (caText !== null) {
    const problem = certificatesProblem(caText);
    if (problem) fail(tctx, problem);
  }
  const typed = each(ctx, v, 'match_typed_subject_alt_names', (m, mctx): SanMatcher | null => {
    const sanType = String(m.san_type ?? 'SAN_TYPE_UNSPECIFIED');
    if (!m.matcher) fail(at(mctx, 'matcher'), 'matcher is required');
    const matcher = stringMatcher((m.matcher ?? {}) as Pb, at(mctx, 'matcher'));
    if (sanType === 'OTHER_NAME') fail(at(mctx, 'san_type'), 'OTHER_NAME is not supported by sidemirror');
    else if (!SAN_TYPES.has(sanType as SanMatcher['sanType'])) fail(at(mctx, 'san_type'), 'one of DNS, URI, IP_ADDRESS or EMAIL is required');
    return SAN_TYPES.has(sanType as SanMatcher['sanType']) ? { sanType: sanType as SanMatcher['sanType'], matcher } : null;
  });
  // The deprecated untyped matchers are kept, as Envoy keeps them: each matches a SAN of any of
  // the four types.
  const legacy = each(ctx, v, 'match_subject_alt_names', (m, mctx) => {
    const matcher = stringMatcher(m, mctx);
    return LEGACY_SAN_TYPES.map((sanType): SanMatcher => ({ sanType, matcher }));
  });
  return {
    trustedCa,
    matchTypedSubjectAltNames: [...typed.filter((m): m is SanMatcher => m !== null), ...legacy.flat()],
    allowExpiredCertificate: Boolean(v.allow_expired_certificate),
  };
}

/**
 * A secret by name: without sds_config from bootstrap static_resources.secrets (validate.ts
 * checks the name exists), with `sds_config: { ads: {} }` over the ADS stream.
 */
export function decodeSdsSecretConfig(s: Pb, ctx: Ctx): SdsSecretConfig {
  const name = String(s.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  const src = s.sds_config as Pb | undefined;
  if (!src) return { name, source: 'static' };
  const sctx = at(ctx, 'sds_config');
  refuse(src, sctx, ['path', 'path_config_source', 'api_config_source', 'initial_fetch_timeout']);
  if (src.resource_api_version === 'V2') fail(at(sctx, 'resource_api_version'), 'V2 is not supported; use V3');
  if (src.ads === undefined && !['path', 'path_config_source', 'api_config_source'].some((k) => src[k] !== undefined)) {
    fail(sctx, 'sds_config must be { ads: {} }, or left out for a static secret of static_resources.secrets');
  }
  return { name, source: 'ads' };
}

/** A Secret of bootstrap static_resources.secrets or of SDS. */
export function decodeSecret(s: Pb, ctx: Ctx): Secret | null {
  const name = String(s.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  if (s.tls_certificate) return { name, kind: 'tls_certificate', tlsCertificate: decodeTlsCertificate(s.tls_certificate as Pb, at(ctx, 'tls_certificate')) };
  if (s.validation_context) {
    return { name, kind: 'validation_context', validationContext: decodeValidationContext(s.validation_context as Pb, at(ctx, 'validation_context')) };
  }
  fail(ctx, 'one of tls_certificate or validation_context is required');
  return null;
}
