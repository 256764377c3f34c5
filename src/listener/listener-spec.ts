import type { ConnectionLog } from '../access-log/connection-log';
import type { FilterChain, Listener } from '../config/model';
import type { ConnectionManager } from '../http/connection-manager';

/** A listener as the manager runs it: its config and the connection manager that serves it. */
export interface ListenerSpec {
  readonly listener: Listener;
  /** One per filter chain, in the listener's order. */
  readonly chains: readonly ChainSpec[];
  readonly defaultChain: ChainSpec | null;
  /** The listener's access_log (a line per connection); null or absent: none. */
  readonly connectionLog?: ConnectionLog | null;
}

/** A filter chain as the manager runs it. */
export interface ChainSpec {
  readonly chain: FilterChain;
  readonly connectionManager: ConnectionManager;
}
