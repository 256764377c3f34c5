import { ConfigError } from '../config/errors';
import type { Bootstrap, Cluster } from '../config/model';
import { clusterAdsSecretRefs } from '../config/sds-refs';
import { SecretStore } from '../tls/secret-store';
import { AdsTlsCredentials } from './ads-credentials';
import type { AdsChannelOptions } from './ads-stream';

/** The static cluster `ads_config` names, with its path in the bootstrap. */
function adsCluster(b: Bootstrap): { cluster: Cluster | undefined; path: string } {
  const name = b.dynamicResources?.adsClusterName;
  const i = b.clusters.findIndex((c) => c.name === name);
  return { cluster: b.clusters[i], path: `static_resources.clusters[${i}]` };
}

/** `host:port` of the management server: the first endpoint of the cluster `ads_config` names. */
export function adsTarget(b: Bootstrap): string {
  const ep = adsCluster(b).cluster?.loadAssignment?.endpoints[0];
  if (!ep) {
    const name = b.dynamicResources?.adsClusterName;
    throw new ConfigError([{ path: 'dynamic_resources.ads_config', message: `cluster "${name}" has no endpoint to reach the management server` }]);
  }
  const host = ep.address.host.includes(':') ? `[${ep.address.host}]` : ep.address.host;
  return `${host}:${ep.address.port}`;
}

/**
 * TLS to the management server from the ADS cluster's transport_socket, its static secrets
 * looked up in `store`; undefined for a plaintext cluster. The secrets cannot come over the very
 * stream they would secure, and transport_socket_matches (chosen per endpoint) is refused rather
 * than silently left out.
 */
function adsCredentials(b: Bootstrap, store: SecretStore): AdsTlsCredentials | undefined {
  const { cluster, path } = adsCluster(b);
  if (!cluster) return undefined;
  if (cluster.transportSocketMatches.length > 0) {
    throw new ConfigError([{ path: `${path}.transport_socket_matches`, message: 'the ADS cluster takes its TLS from transport_socket only' }]);
  }
  const fromAds = clusterAdsSecretRefs(cluster);
  if (fromAds.length > 0) {
    throw new ConfigError(fromAds.map((r) => ({ path: `${path}.${r.path}`, message: 'the ADS cluster cannot take a secret from the ADS stream it secures; use static_resources.secrets or tls_certificates' })));
  }
  return cluster.tls ? new AdsTlsCredentials(cluster.tls, store) : undefined;
}

/**
 * The management server's address and the channel options the bootstrap's ADS GrpcService and
 * its cluster give. `store` holds the bootstrap's static secrets, which the ADS cluster's TLS may
 * name (the proxy's own store; by default one made for the purpose).
 */
export function adsConnection(b: Bootstrap, store: SecretStore = staticSecrets(b)): { target: string; channel: AdsChannelOptions } {
  const d = b.dynamicResources;
  const target = adsTarget(b);
  return {
    target,
    channel: { metadata: d?.adsInitialMetadata ?? [], maxReceiveMessageBytes: d?.adsMaxReceiveMessageBytes ?? null, credentials: adsCredentials(b, store) },
  };
}

function staticSecrets(b: Bootstrap): SecretStore {
  const store = new SecretStore();
  store.setStatic(b.secrets);
  return store;
}
