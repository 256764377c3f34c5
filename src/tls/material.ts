import type { CertificateValidationContext, CommonTlsContext, DataSource, SanMatcher, SdsSecretConfig, TlsCertificate } from '../config/transport-model';
import { dataSourcePath, readDataSource } from './data-source';
import type { SecretStore } from './secret-store';

// What a CommonTlsContext amounts to right now: its certificates and its validation context,
// with secrets looked up and every DataSource read.

export interface CertificateMaterial {
  /** PEM: the leaf first, then intermediates. */
  readonly chain: Buffer;
  readonly key: Buffer;
  readonly passphrase: string | undefined;
  /** For the admin `/certs` page: the file, or `<inline>`. */
  readonly chainPath: string;
}

export interface ValidationMaterial {
  /** PEM bundle; null: chains are not verified. */
  readonly ca: Buffer | null;
  readonly caPath: string | null;
  readonly sanMatchers: readonly SanMatcher[];
  readonly allowExpired: boolean;
}

export interface TlsMaterial {
  readonly certificates: readonly CertificateMaterial[];
  readonly validation: ValidationMaterial | null;
  /** Every file read, to be watched. */
  readonly files: readonly string[];
}

/** A context's material could not be read; `files` are those it named so far, to watch for a fix. */
export class MaterialError extends Error {
  constructor(message: string, readonly files: readonly string[]) {
    super(message);
  }
}

export type Resolution =
  | { readonly kind: 'ready'; readonly material: TlsMaterial }
  /** SDS secrets that have not arrived. */
  | { readonly kind: 'waiting'; readonly missing: readonly SdsSecretConfig[] };

/** Every secret the context refers to. */
export function secretRefs(common: CommonTlsContext): SdsSecretConfig[] {
  const refs = [...common.tlsCertificateSdsSecretConfigs];
  if (common.validationContextSdsSecretConfig) refs.push(common.validationContextSdsSecretConfig);
  return refs;
}

/**
 * Looks the context's secrets up and reads its files. Throws a MaterialError when a file or
 * variable cannot be read or a secret is of the wrong kind; returns `waiting` while an SDS
 * secret is missing.
 */
export function resolveMaterial(common: CommonTlsContext, store: SecretStore, env: NodeJS.ProcessEnv = process.env): Resolution {
  const missing = secretRefs(common).filter((r) => !store.ready(r));
  if (missing.length > 0) return { kind: 'waiting', missing };
  const files = new Set<string>();
  try {
    return { kind: 'ready', material: readMaterial(common, store, env, files) };
  } catch (err) {
    throw new MaterialError((err as Error).message, [...files]);
  }
}

function readMaterial(common: CommonTlsContext, store: SecretStore, env: NodeJS.ProcessEnv, files: Set<string>): TlsMaterial {
  const read = (ds: DataSource): Buffer => {
    if (ds.kind === 'filename') files.add(ds.path);
    return readDataSource(ds, env);
  };
  const certs: TlsCertificate[] = [...common.tlsCertificates];
  for (const ref of common.tlsCertificateSdsSecretConfigs) {
    const s = store.get(ref)!;
    if (s.kind !== 'tls_certificate') throw new Error(`secret '${ref.name}' is a ${s.kind}, not a tls_certificate`);
    certs.push(s.tlsCertificate);
  }
  const certificates = certs.map((c) => ({
    chain: read(c.certificateChain),
    key: read(c.privateKey),
    passphrase: c.password ? read(c.password).toString('utf8') : undefined,
    chainPath: dataSourcePath(c.certificateChain),
  }));
  let vc = common.validationContext;
  const vref = common.validationContextSdsSecretConfig;
  if (vref) {
    const s = store.get(vref)!;
    if (s.kind !== 'validation_context') throw new Error(`secret '${vref.name}' is a ${s.kind}, not a validation_context`);
    vc = vc ? mergeValidation(vc, s.validationContext) : s.validationContext;
  }
  if (vc && !vc.trustedCa) {
    // Envoy refuses these too: without a CA, any self-made certificate could carry the SANs.
    if (vc.matchTypedSubjectAltNames.length > 0) throw new Error('SAN-based verification of peer certificates without trusted CA is insecure and not allowed');
    if (vc.allowExpiredCertificate) throw new Error('Certificate validity period is always ignored without trusted CA');
  }
  const validation: ValidationMaterial | null = vc
    ? {
        ca: vc.trustedCa ? read(vc.trustedCa) : null,
        caPath: vc.trustedCa ? dataSourcePath(vc.trustedCa) : null,
        sanMatchers: vc.matchTypedSubjectAltNames,
        allowExpired: vc.allowExpiredCertificate,
      }
    : null;
  return { certificates, validation, files: [...files] };
}

/**
 * combined_validation_context: the SDS secret merged over the default context as protobuf's
 * MergeFrom does (a field set in the secret wins, lists concatenate, a true bool stays true).
 */
export function mergeValidation(base: CertificateValidationContext, dynamic: CertificateValidationContext): CertificateValidationContext {
  return {
    trustedCa: dynamic.trustedCa ?? base.trustedCa,
    matchTypedSubjectAltNames: [...base.matchTypedSubjectAltNames, ...dynamic.matchTypedSubjectAltNames],
    allowExpiredCertificate: base.allowExpiredCertificate || dynamic.allowExpiredCertificate,
  };
}
