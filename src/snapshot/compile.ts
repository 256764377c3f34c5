import { ConnectionLog } from '../access-log/connection-log';
import type { FilterChain, HttpConnectionManager, Listener } from '../config/model';
import { type ConnectionManagerDeps, ConnectionManager, type RouterSettings } from '../http/connection-manager';
import type { ChainSpec, ListenerSpec } from '../listener/listener-manager';
import type { RouteTable } from '../router/route-table';
import { TcpProxy, type TcpProxyDeps } from '../tcp/tcp-proxy';

const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** The router filter's typed config, as far as it changes what we send. */
export function routerSettings(hcm: HttpConnectionManager): RouterSettings {
  const router = hcm.httpFilters.find((f) => f.config?.typeUrl === ROUTER_TYPE);
  return { suppressEnvoyHeaders: Boolean(router?.config?.value.suppress_envoy_headers) };
}

/**
 * Turns listeners into what the listener manager runs: a TCP proxy per tcp_proxy filter chain,
 * a connection manager per HTTP one, reading its routes through `routesFor` (an inline route
 * table, or the RDS one current when a request comes).
 */
export function compileListeners(
  listeners: readonly Listener[],
  deps: ConnectionManagerDeps & TcpProxyDeps,
  routesFor: (listener: Listener, hcm: HttpConnectionManager) => () => RouteTable | null,
): ListenerSpec[] {
  const chainSpec = (listener: Listener, chain: FilterChain): ChainSpec => {
    if (chain.kind === 'tcp_proxy') return { chain, tcpProxy: new TcpProxy(chain.tcpProxy, deps, listener.perConnectionBufferLimitBytes) };
    return {
      chain,
      connectionManager: new ConnectionManager(chain.hcm, routesFor(listener, chain.hcm),
        { ...routerSettings(chain.hcm), bufferLimitBytes: listener.perConnectionBufferLimitBytes }, deps),
    };
  };
  return listeners.map((listener) => ({
    listener,
    chains: listener.filterChains.map((c) => chainSpec(listener, c)),
    defaultChain: listener.defaultFilterChain ? chainSpec(listener, listener.defaultFilterChain) : null,
    connectionLog: ConnectionLog.compile(listener.accessLog, deps.accessLog?.manager, deps.accessLog?.runtime),
  }));
}
