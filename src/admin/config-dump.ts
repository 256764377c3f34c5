import type * as protobuf from 'protobufjs';
import { BOOTSTRAP_TYPE } from '../config/load';
import { TYPE_URL_PREFIX, messageType } from '../config/proto';
import { redactedProto3Json } from '../config/redact';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../config/resources';
import type { DynamicConfig, ResourceRecord } from '../xds/dynamic-config';

type Json = Record<string, unknown>;

/**
 * One resource as proto3 JSON with its `@type`, as Envoy's config dump shows Any fields, its
 * secrets (sensitive fields, in nested Anys too) redacted as Envoy's dump does.
 */
function asAny(typeName: string, message: protobuf.Message | Json): Json {
  const type = messageType(typeName);
  const msg = message instanceof type.ctor ? (message as protobuf.Message) : type.fromObject(message as Json);
  return { '@type': TYPE_URL_PREFIX + typeName, ...redactedProto3Json(msg) };
}

const typeName = (url: string): string => url.slice(TYPE_URL_PREFIX.length);

function dynamicEntry(r: ResourceRecord<unknown>, url: string, field: string): Json {
  return { version_info: r.version, [field]: asAny(typeName(url), r.message), last_updated: r.lastUpdated.toISOString() };
}

/**
 * Envoy's /config_dump: the bootstrap, then listeners, clusters, routes (and endpoints, under
 * xDS) in the dump messages Envoy uses, static ones from the bootstrap and dynamic ones with the
 * version and time they were last updated.
 */
export function configDump(bootstrap: protobuf.Message, loadedAt: Date, dynamic: DynamicConfig | null): Json {
  const lastUpdated = loadedAt.toISOString();
  const b = messageType(BOOTSTRAP_TYPE).toObject(bootstrap, { defaults: false }) as Json;
  const sr = (b.static_resources ?? {}) as { listeners?: Json[]; clusters?: Json[] };
  const listeners = sr.listeners ?? [];
  const routeConfigs = listeners.flatMap((l) => inlineRouteConfigs(l));
  const configs: Json[] = [
    { '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.BootstrapConfigDump`, bootstrap: redactedProto3Json(bootstrap), last_updated: lastUpdated },
    {
      '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.ListenersConfigDump`,
      ...(dynamic ? { version_info: dynamic.version(LISTENER_TYPE) } : {}),
      static_listeners: listeners.map((l) => ({ listener: asAny('envoy.config.listener.v3.Listener', l), last_updated: lastUpdated })),
      ...(dynamic ? {
        dynamic_listeners: [...dynamic.listeners.values()].map((r) => ({ name: r.name, active_state: dynamicEntry(r, LISTENER_TYPE, 'listener') })),
      } : {}),
    },
    {
      '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.ClustersConfigDump`,
      ...(dynamic ? { version_info: dynamic.version(CLUSTER_TYPE) } : {}),
      static_clusters: (sr.clusters ?? []).map((c) => ({ cluster: asAny('envoy.config.cluster.v3.Cluster', c), last_updated: lastUpdated })),
      ...(dynamic ? { dynamic_active_clusters: [...dynamic.clusters.values()].map((r) => dynamicEntry(r, CLUSTER_TYPE, 'cluster')) } : {}),
    },
    {
      '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.RoutesConfigDump`,
      static_route_configs: routeConfigs.map((rc) => ({ route_config: rc, last_updated: lastUpdated })),
      ...(dynamic ? { dynamic_route_configs: [...dynamic.routes.values()].map((r) => dynamicEntry(r, ROUTE_TYPE, 'route_config')) } : {}),
    },
  ];
  if (dynamic) {
    configs.push({
      '@type': `${TYPE_URL_PREFIX}envoy.admin.v3.EndpointsConfigDump`,
      dynamic_endpoint_configs: [...dynamic.endpoints.values()].map((r) => ({
        version_info: r.version,
        endpoint_config: asAny('envoy.config.endpoint.v3.ClusterLoadAssignment', r.message),
        last_updated: r.lastUpdated.toISOString(),
      })),
    });
  }
  return { configs };
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
