import type { Cluster, Listener } from './model';
import type { CommonTlsContext, Secret } from './transport-model';

// The secrets listeners and clusters take from the ADS stream (`sds_config: { ads: {} }`): what
// the sidecar subscribes to by name, waits for while warming, and what the control plane checks
// a snapshot holds. Static secret references (bootstrap static_resources.secrets) are left out.

export interface AdsSecretRef {
  readonly name: string;
  /** How the reference uses the secret: as a certificate or as a validation context. */
  readonly kind: Secret['kind'];
  /** The reference's `name` field, relative to the resource (for issue paths). */
  readonly path: string;
}

/** ADS secrets of one TLS context; `path` is the context's own (`….common_tls_context`). */
export function commonAdsSecretRefs(common: CommonTlsContext, path: string): AdsSecretRef[] {
  const out: AdsSecretRef[] = [];
  common.tlsCertificateSdsSecretConfigs.forEach((ref, i) => {
    if (ref.source === 'ads') out.push({ name: ref.name, kind: 'tls_certificate', path: `${path}.tls_certificate_sds_secret_configs[${i}].name` });
  });
  const v = common.validationContextSdsSecretConfig;
  if (v?.source === 'ads') {
    // With a default context beside it, the reference sat in combined_validation_context.
    const where = common.validationContext !== null ? 'combined_validation_context.validation_context_sds_secret_config' : 'validation_context_sds_secret_config';
    out.push({ name: v.name, kind: 'validation_context', path: `${path}.${where}.name` });
  }
  return out;
}

/** Every ADS secret a listener's filter chains (and its default chain) name. */
export function listenerAdsSecretRefs(l: Listener): AdsSecretRef[] {
  const chains = l.filterChains.map((chain, i) => ({ chain, path: `filter_chains[${i}]` }));
  if (l.defaultFilterChain) chains.push({ chain: l.defaultFilterChain, path: 'default_filter_chain' });
  return chains.flatMap(({ chain, path }) => (chain.tls ? commonAdsSecretRefs(chain.tls.common, `${path}.transport_socket.typed_config.common_tls_context`) : []));
}

/** Every ADS secret a cluster's transport_socket and transport_socket_matches name. */
export function clusterAdsSecretRefs(c: Cluster): AdsSecretRef[] {
  const out = c.tls ? commonAdsSecretRefs(c.tls.common, 'transport_socket.typed_config.common_tls_context') : [];
  c.transportSocketMatches.forEach((m, i) => {
    if (m.tls) out.push(...commonAdsSecretRefs(m.tls.common, `transport_socket_matches[${i}].transport_socket.typed_config.common_tls_context`));
  });
  return out;
}

/** How a secret of `actual` kind fails a reference, or null when it fits. */
export function secretKindProblem(ref: AdsSecretRef, actual: Secret['kind']): string | null {
  if (ref.kind === actual) return null;
  return `secret "${ref.name}" is a ${actual}, but this reference needs a ${ref.kind}`;
}
