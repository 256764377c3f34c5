import type { Listener } from '../config/model';
import { type ConnectionManagerDeps, ConnectionManager, type RouterSettings } from '../http/connection-manager';
import type { ListenerSpec } from '../listener/listener-manager';
import { RouteTable } from '../router/route-table';
import type { Runtime } from '../runtime/runtime';

const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** The router filter's typed config, as far as it changes what we send. */
export function routerSettings(listener: Listener): RouterSettings {
  const router = listener.hcm.httpFilters.find((f) => f.config?.typeUrl === ROUTER_TYPE);
  return { suppressEnvoyHeaders: Boolean(router?.config?.value.suppress_envoy_headers) };
}

/**
 * Compiles listeners with inline routes into what the listener manager runs: a route table and
 * a connection manager each. Routes that arrive later (RDS) come through `routesFor`.
 */
export function compileListeners(
  listeners: readonly Listener[],
  runtime: Runtime,
  deps: ConnectionManagerDeps,
  routesFor: (listener: Listener) => () => RouteTable | null = inlineRoutes(runtime),
): ListenerSpec[] {
  return listeners.map((listener) => ({
    listener,
    connectionManager: new ConnectionManager(listener.hcm, routesFor(listener), routerSettings(listener), deps),
  }));
}

function inlineRoutes(runtime: Runtime): (listener: Listener) => () => RouteTable | null {
  return (listener) => {
    const table = listener.hcm.routeConfig ? new RouteTable(listener.hcm.routeConfig, runtime) : null;
    return () => table;
  };
}
