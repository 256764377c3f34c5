import type { ConnectionLog } from '../access-log/connection-log';
import type { HttpFilterChain, Listener, TcpProxyFilterChain } from '../config/model';
import type { ConnectionManager } from '../http/connection-manager';
import type { TcpProxy } from '../tcp/tcp-proxy';

/** A listener as the manager runs it: its config and what serves each of its filter chains. */
export interface ListenerSpec {
  readonly listener: Listener;
  /** One per filter chain, in the listener's order. */
  readonly chains: readonly ChainSpec[];
  readonly defaultChain: ChainSpec | null;
  /** The listener's access_log (a line per connection); null or absent: none. */
  readonly connectionLog?: ConnectionLog | null;
}

/** A filter chain as the manager runs it: its connection manager, or its TCP proxy. */
export type ChainSpec = HttpChainSpec | TcpChainSpec;

export interface HttpChainSpec {
  readonly chain: HttpFilterChain;
  readonly connectionManager: ConnectionManager;
}

export interface TcpChainSpec {
  readonly chain: TcpProxyFilterChain;
  readonly tcpProxy: TcpProxy;
}
