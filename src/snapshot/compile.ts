import type { Listener } from '../config/model';
import { type ConnectionManagerDeps, ConnectionManager, type RouterSettings } from '../http/connection-manager';
import type { ListenerSpec } from '../listener/listener-manager';
import type { RouteTable } from '../router/route-table';

const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** The router filter's typed config, as far as it changes what we send. */
export function routerSettings(listener: Listener): RouterSettings {
  const router = listener.hcm.httpFilters.find((f) => f.config?.typeUrl === ROUTER_TYPE);
  return { suppressEnvoyHeaders: Boolean(router?.config?.value.suppress_envoy_headers) };
}

/**
 * Turns listeners into what the listener manager runs: a connection manager each, reading its
 * routes through `routesFor` (an inline route table, or the RDS one current when a request comes).
 */
export function compileListeners(
  listeners: readonly Listener[],
  deps: ConnectionManagerDeps,
  routesFor: (listener: Listener) => () => RouteTable | null,
): ListenerSpec[] {
  return listeners.map((listener) => ({
    listener,
    connectionManager: new ConnectionManager(listener.hcm, routesFor(listener), routerSettings(listener), deps),
  }));
}
