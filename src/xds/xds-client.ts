import { type ResourceTypeUrl, TYPE_SHORT } from '../config/resources';
import type { NodeInfo } from '../config/model';
import type { Logger } from '../log/logger';
import type { StatsRegistry } from '../stats/registry';
import { version } from '../version';
import { type AdsChannelOptions, AdsStream, type BackoffOptions, type DiscoveryResponse } from './ads-stream';
import { DynamicConfig, type DynamicConfigSink, type ListenerBinder, type ResourceCheck } from './dynamic-config';
import { XdsMux } from './mux';

export interface XdsClientOptions {
  /** `host:port` of the management server. */
  readonly target: string;
  readonly node: NodeInfo;
  readonly sink: DynamicConfigSink;
  readonly logger: Logger;
  readonly stats: StatsRegistry;
  readonly backoff?: BackoffOptions;
  /** initial_metadata, the receive limit and TLS, from the bootstrap (ads-target.ts adsConnection). */
  readonly channel?: AdsChannelOptions;
  /** Every accepted response, as received (the supervisor forwards them to its workers). */
  readonly onAccepted?: (response: DiscoveryResponse) => void;
  /** Checks each decoded resource before its response is accepted (hook modules, say). */
  readonly check?: ResourceCheck;
  /** Binds listeners' sockets before an LDS response is accepted (NACKed when one cannot bind). */
  readonly bindListeners?: ListenerBinder;
}

/** A source of dynamic config the proxy can start and stop: this client, or a worker's IPC feed. */
export interface DynamicSource {
  readonly config: DynamicConfig;
  start(): void;
  close(): void;
}

/** The sidecar's ADS client: stream → mux → typed subscriptions → the proxy (Envoy's layering). */
export class XdsClient implements DynamicSource {
  readonly config: DynamicConfig;
  readonly #stream: AdsStream;

  constructor(o: XdsClientOptions) {
    const stats = o.stats;
    const mux = new XdsMux(
      { id: o.node.id, cluster: o.node.cluster, user_agent_name: 'sidemirror', user_agent_version: version },
      {
        onAccepted: o.onAccepted,
        onAck: (typeUrl, v) => o.logger.info({ type: shortName(typeUrl), version: v }, 'xDS ACK'),
        onNack: (typeUrl, v, error) => o.logger.warn({ type: shortName(typeUrl), version: v, error }, 'xDS NACK'),
      },
    );
    const count = (result: string) => (typeUrl: ResourceTypeUrl): void => {
      stats.xdsUpdates.labels({ xds_type: TYPE_SHORT[typeUrl], result }).inc();
    };
    this.config = new DynamicConfig(mux, o.sink, o.logger, { attempt: count('attempt'), success: count('success'), rejected: count('rejected') }, o.check, o.bindListeners);
    stats.controlPlaneConnected.set(0);
    this.#stream = new AdsStream(o.target, {
      onOpen: () => mux.onStreamOpen(),
      onResponse: (response) => {
        stats.controlPlaneConnected.set(1);
        mux.onResponse(response);
      },
      onClose: (reason) => {
        stats.controlPlaneConnected.set(0);
        // The last good configuration keeps serving while we reconnect.
        o.logger.warn({ target: o.target, reason }, 'xDS stream closed; reconnecting');
      },
    }, o.backoff, o.channel);
    mux.attach(this.#stream);
  }

  get connected(): boolean {
    return this.#stream.connected;
  }

  start(): void {
    this.#stream.start();
  }

  close(): void {
    this.config.close();
    this.#stream.close();
  }
}

function shortName(typeUrl: string): string {
  return TYPE_SHORT[typeUrl as ResourceTypeUrl] ?? typeUrl;
}
