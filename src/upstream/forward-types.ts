import type { Readable } from 'node:stream';
import type { ResponseTap } from '../compare/capture';
import type { HeaderMap } from '../http/headers';
import type { UpstreamCluster } from './cluster-manager';
import type { Host } from './host';
import type { RetryPlan } from './retry-plan';

// What the connection manager and the primary exchange (forward.ts) say to each other.

/** How the primary exchange ended, for the connection manager to answer or log. */
export type PrimaryFailure = 'connect_failure' | 'reset' | 'timeout' | 'protocol_error' | 'downstream_reset';

/**
 * What a primary exchange with retries can also end in: no healthy host left for a retry (503), a
 * body that outgrew the buffer while a retry waited (Envoy's 507), or a retry the max_requests
 * circuit breaker turned away (503, x-envoy-overloaded).
 */
export type ForwardFailure = PrimaryFailure | 'no_healthy_upstream' | 'retry_buffer_overflow' | 'overflow';

/** What the connection manager hands the forwarder for one primary request. */
export interface PrimaryForward {
  readonly cluster: UpstreamCluster;
  readonly host: Host;
  readonly method: string;
  readonly path: string;
  readonly headers: HeaderMap;
  readonly body: Readable | null;
  /** The router's suppress_envoy_headers: no x-envoy-upstream-service-time on the response. */
  readonly suppressEnvoyHeaders: boolean;
  /** What the request came in on, for clusters with use_downstream_protocol_config. */
  readonly downstreamProtocol: 'HTTP/1.1' | 'HTTP/2';
  /** The request's trailers, read once its body has ended (HTTP/2 upstreams send them). */
  readonly requestTrailers: () => Record<string, string> | null;
  /** Envoy's route timeout (0: none), counted from the end of the downstream request. */
  readonly timeoutMs: number;
  /** The headers to send the client, from the upstream's raw header list (hop-by-hop out, route edits in). */
  readonly responseHeaders: (status: number, raw: readonly Buffer[]) => OutgoingHeaders;
  /** Called when the exchange fails before any response byte reached the client; `headers` go on the reply. */
  readonly localReply: (failure: ForwardFailure, headers?: Record<string, string>) => void;
  /** Told of the failure that ends the exchange, before anything is done about it (the access log's flags). */
  readonly onFailure?: (failure: ForwardFailure, err: Error) => void;
  /** Told of each upstream attempt's host, the first and every retry (the access log's upstream host). */
  readonly onAttempt?: (host: Host) => void;
  /**
   * Sync-mode shadows: the response is held until this settles (it is bounded by the policies'
   * sync_timeout), then sent with the headers it yields added.
   */
  readonly syncWait: Promise<Record<string, string>> | null;
  /** A compared request: shown the upstream's response as it streams on to the client. */
  readonly tap?: ResponseTap | null;
  /** Retries, per-try timeouts and attempt headers (retry-plan.ts); null: one plain attempt. */
  readonly retry?: RetryPlan | null;
}

/** Response headers as Node's writeHead takes them: a flat [name, value, …] list, or an object. */
export type OutgoingHeaders = string[] | HeaderMap;

