import type { IssueCollector } from './errors';
import type { Cluster, Listener } from './model';
import type { CertificateValidationContext, CommonTlsContext, Secret } from './transport-model';

// TLS contexts against the secrets they name: Envoy's rules for a validation context, the merge
// of a combined validation context, and the references to bootstrap static_resources.secrets
// (which only the sidecar's own bootstrap holds: LDS and CDS resources are checked against it too).

/**
 * Envoy's rules for the validation context in force (after any merge): without a trusted CA,
 * matching SANs or accepting expired certificates would be checks of nothing.
 */
export function validationContextProblems(vc: CertificateValidationContext): string[] {
  if (vc.trustedCa !== null) return [];
  const out: string[] = [];
  if (vc.matchTypedSubjectAltNames.length > 0) out.push('SAN-based verification of peer certificates without trusted CA is insecure and not allowed');
  if (vc.allowExpiredCertificate) out.push('Certificate validity period is always ignored without trusted CA');
  return out;
}

/**
 * combined_validation_context: the secret's context merged over the default one, as protobuf's
 * MergeFrom does (a set field overrides, repeated fields concatenate, a true bool wins).
 */
export function mergeValidationContexts(base: CertificateValidationContext, over: CertificateValidationContext): CertificateValidationContext {
  return {
    trustedCa: over.trustedCa ?? base.trustedCa,
    matchTypedSubjectAltNames: [...base.matchTypedSubjectAltNames, ...over.matchTypedSubjectAltNames],
    allowExpiredCertificate: base.allowExpiredCertificate || over.allowExpiredCertificate,
  };
}

/** A static secret by name and kind (Envoy keeps one namespace per kind). */
export function findStaticSecret<K extends Secret['kind']>(secrets: readonly Secret[], name: string, kind: K): Extract<Secret, { kind: K }> | undefined {
  return secrets.find((s): s is Extract<Secret, { kind: K }> => s.kind === kind && s.name === name);
}

/** What the secrets a resource names are checked against. */
export interface SecretScope {
  /** bootstrap static_resources.secrets. */
  readonly secrets: readonly Secret[];
  /** The bootstrap has an ADS stream (dynamic_resources.ads_config), which `sds_config: { ads: {} }` needs. */
  readonly ads: boolean;
}

/**
 * The static secrets a context names must exist, and the validation context they make must
 * pass Envoy's rules. `path` is the context's own (`…typed_config.common_tls_context`).
 * Secrets that come over ADS are checked when they arrive, not here.
 */
export function validateStaticSecretRefs(common: CommonTlsContext, scope: SecretScope, path: string, issues: IssueCollector,
  requireClientCertificate = false): void {
  const noAds = (refPath: string): void => issues.add(`${refPath}.sds_config`, 'sds_config { ads: {} } needs dynamic_resources.ads_config in the bootstrap');
  common.tlsCertificateSdsSecretConfigs.forEach((ref, i) => {
    const refPath = `${path}.tls_certificate_sds_secret_configs[${i}]`;
    if (ref.source === 'ads' && !scope.ads) noAds(refPath);
    if (ref.source === 'static' && !findStaticSecret(scope.secrets, ref.name, 'tls_certificate')) {
      issues.add(`${refPath}.name`, `Unknown static secret: ${ref.name}`);
    }
  });
  const ref = common.validationContextSdsSecretConfig;
  if (!ref) return;
  const combined = common.validationContext !== null;
  const refPath = combined ? `${path}.combined_validation_context.validation_context_sds_secret_config` : `${path}.validation_context_sds_secret_config`;
  if (ref.source === 'ads') {
    if (!scope.ads) noAds(refPath);
    return;
  }
  const secrets = scope.secrets;
  const secret = findStaticSecret(secrets, ref.name, 'validation_context');
  if (!secret) {
    issues.add(`${refPath}.name`, `Unknown static certificate validation context: ${ref.name}`);
    return;
  }
  const effective = combined ? mergeValidationContexts(common.validationContext!, secret.validationContext) : secret.validationContext;
  for (const problem of validationContextProblems(effective)) issues.add(refPath, problem);
  if (requireClientCertificate && effective.trustedCa === null) {
    issues.add(refPath, `secret "${ref.name}" has no trusted_ca, which require_client_certificate needs`);
  }
}

/** Every TLS context of a listener's chains; `base` is the listener's path. */
export function validateListenerSecretRefs(l: Listener, scope: SecretScope, base: string, issues: IssueCollector): void {
  const chains = l.filterChains.map((chain, i) => ({ chain, path: `${base}.filter_chains[${i}]` }));
  if (l.defaultFilterChain) chains.push({ chain: l.defaultFilterChain, path: `${base}.default_filter_chain` });
  for (const { chain, path } of chains) {
    if (!chain.tls) continue;
    validateStaticSecretRefs(chain.tls.common, scope, `${path}.transport_socket.typed_config.common_tls_context`, issues, chain.tls.requireClientCertificate);
  }
}

/** A cluster's transport_socket and transport_socket_matches; `base` is the cluster's path. */
export function validateClusterSecretRefs(c: Cluster, scope: SecretScope, base: string, issues: IssueCollector): void {
  if (c.tls) validateStaticSecretRefs(c.tls.common, scope, `${base}.transport_socket.typed_config.common_tls_context`, issues);
  c.transportSocketMatches.forEach((m, i) => {
    if (m.tls) validateStaticSecretRefs(m.tls.common, scope, `${base}.transport_socket_matches[${i}].transport_socket.typed_config.common_tls_context`, issues);
  });
}

/** Envoy's per-kind uniqueness of static secret names, by index into static_resources.secrets. */
export function validateSecretNames(secrets: readonly Secret[], base: string, issues: IssueCollector): void {
  const seen = new Set<string>();
  secrets.forEach((s, i) => {
    const key = `${s.kind}\0${s.name}`;
    const what = s.kind === 'tls_certificate' ? 'TlsCertificate' : 'CertificateValidationContext';
    if (seen.has(key)) issues.add(`${base}[${i}].name`, `Duplicate static ${what} secret name ${s.name}`);
    seen.add(key);
  });
}
