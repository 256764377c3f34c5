import type * as protobuf from 'protobufjs';
import { toProto3JSON } from 'proto3-json-serializer';
import { BOOTSTRAP_TYPE } from '../config/load';
import { TYPE_URL_PREFIX, messageType } from '../config/proto';

type Json = Record<string, unknown>;

/** One resource as proto3 JSON with its `@type`, as Envoy's config dump shows Any fields. */
function asAny(typeName: string, message: protobuf.Message | Json): Json {
  const type = messageType(typeName);
  const msg = message instanceof type.ctor ? (message as protobuf.Message) : type.fromObject(message as Json);
  return { '@type': TYPE_URL_PREFIX + typeName, ...(toProto3JSON(msg) as Json) };
}

/**
 * Envoy's /config_dump for a static bootstrap: the bootstrap, then its listeners, clusters and
 * inline route configurations, each in the dump message Envoy uses.
 */
export function staticConfigDump(bootstrap: protobuf.Message, loadedAt: Date): Json {
  const lastUpdated = loadedAt.toISOString();
  const b = messageType(BOOTSTRAP_TYPE).toObject(bootstrap, { defaults: false }) as Json;
  const sr = (b.static_resources ?? {}) as { listeners?: Json[]; clusters?: Json[] };
  const listeners = sr.listeners ?? [];
  const routeConfigs = listeners.flatMap((l) => inlineRouteConfigs(l));
  return {
    configs: [
      { '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.BootstrapConfigDump`, bootstrap: toProto3JSON(bootstrap), last_updated: lastUpdated },
      {
        '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.ListenersConfigDump`,
        static_listeners: listeners.map((l) => ({ listener: asAny('envoy.config.listener.v3.Listener', l), last_updated: lastUpdated })),
      },
      {
        '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.ClustersConfigDump`,
        static_clusters: (sr.clusters ?? []).map((c) => ({ cluster: asAny('envoy.config.cluster.v3.Cluster', c), last_updated: lastUpdated })),
      },
      {
        '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.RoutesConfigDump`,
        static_route_configs: routeConfigs.map((rc) => ({ route_config: rc, last_updated: lastUpdated })),
      },
    ],
  };
}

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function inlineRouteConfigs(listener: Json): Json[] {
  const out: Json[] = [];
  for (const chain of (listener.filter_chains as Json[] | undefined) ?? []) {
    for (const filter of (chain.filters as Json[] | undefined) ?? []) {
      const any = filter.typed_config as { type_url?: string; value?: Uint8Array } | undefined;
      if (!any?.type_url?.endsWith(HCM) || !any.value) continue;
      const hcmType = messageType(HCM);
      const hcm = hcmType.toObject(hcmType.decode(any.value)) as Json;
      if (hcm.route_config) out.push(asAny('envoy.config.route.v3.RouteConfiguration', hcm.route_config as Json));
    }
  }
  return out;
}
