import { ConfigError } from '../config/errors';
import type { Bootstrap } from '../config/model';
import type { AdsChannelOptions } from './ads-stream';

/** `host:port` of the management server: the first endpoint of the cluster `ads_config` names. */
export function adsTarget(b: Bootstrap): string {
  const name = b.dynamicResources?.adsClusterName;
  const ep = b.clusters.find((c) => c.name === name)?.loadAssignment?.endpoints[0];
  if (!ep) throw new ConfigError([{ path: 'dynamic_resources.ads_config', message: `cluster "${name}" has no endpoint to reach the management server` }]);
  const host = ep.address.host.includes(':') ? `[${ep.address.host}]` : ep.address.host;
  return `${host}:${ep.address.port}`;
}

/** The management server's address and the channel options the bootstrap's ADS GrpcService gives. */
export function adsConnection(b: Bootstrap): { target: string; channel: AdsChannelOptions } {
  const d = b.dynamicResources;
  return { target: adsTarget(b), channel: { metadata: d?.adsInitialMetadata ?? [], maxReceiveMessageBytes: d?.adsMaxReceiveMessageBytes ?? null } };
}
