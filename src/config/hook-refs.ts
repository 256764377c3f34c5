import type { Listener, MirrorHooksConfig, RouteConfiguration } from './model';
import { listenerHcms } from './listener-chains';
import { LISTENER_TYPE, ROUTE_TYPE, type ResourceModels, type ResourceTypeUrl } from './resources';

// Every hook module a configuration names, wherever a mirror policy sits (route or virtual host,
// under any filter name), so that all of them can be checked before the config is accepted.

export function routeConfigHooks(rc: RouteConfiguration): MirrorHooksConfig[] {
  const out: MirrorHooksConfig[] = [];
  for (const vhost of rc.virtualHosts) {
    for (const owner of [vhost, ...vhost.routes]) {
      for (const policies of owner.extMirrorPolicies.values()) {
        for (const p of policies) if (p.hooks) out.push(p.hooks);
      }
    }
  }
  return out;
}

export function listenerHooks(listeners: readonly Listener[]): MirrorHooksConfig[] {
  return listeners.flatMap((l) => listenerHcms(l).flatMap((h) => (h.routeConfig ? routeConfigHooks(h.routeConfig) : [])));
}

/** The hook modules an xDS resource names (listeners with inline routes, route configurations). */
export function resourceHooks(typeUrl: ResourceTypeUrl, value: ResourceModels[ResourceTypeUrl]): MirrorHooksConfig[] {
  if (typeUrl === LISTENER_TYPE) return listenerHooks([value as Listener]);
  if (typeUrl === ROUTE_TYPE) return routeConfigHooks(value as RouteConfiguration);
  return [];
}
