import type { HeaderMap } from '../http/headers';
import type { StreamInfo } from '../http/stream-info';
import type { ForwardFailure } from '../upstream/forward-types';
import type { Endpoint } from './entry';
import { type ResponseFlag, bitOf } from './response-flags';
import type { StreamMeter } from './stream-meter';

// What the connection manager learns of one request while it runs, for that request's access
// log line (Envoy's StreamInfo): the manager calls these as it decides, and the line is made from
// them when the response closes. Only requests on a connection manager with access logs get one.

/** Flags and details of a failed primary exchange, as Envoy's router sets them. */
const FAILURES: Record<Exclude<ForwardFailure, 'retry_buffer_overflow'>, readonly [ResponseFlag, string]> = {
  connect_failure: ['UF', 'upstream_reset_before_response_started{connection_failure}'],
  no_healthy_upstream: ['UH', 'no_healthy_upstream'],
  overflow: ['UO', 'upstream_reset_before_response_started{overflow}'],
  reset: ['UC', 'upstream_reset_before_response_started{connection_termination}'],
  protocol_error: ['UPE', 'upstream_reset_before_response_started{protocol_error}'],
  timeout: ['UT', 'upstream_response_timeout'],
  downstream_reset: ['DC', 'downstream_remote_disconnect'],
};

export class RequestFacts {
  /** Wall clock at the start, ms with sub-ms digits. */
  readonly startEpochMs = performance.timeOrigin + performance.now();
  flags = 0;
  details: string | null = null;
  routeName: string | null = null;
  cluster: string | null = null;
  upstreamHost: Endpoint | null = null;
  upstreamAttempts = 0;
  upstreamFailureReason: string | null = null;
  /** performance.now() at the upstream's response head; 0: none came. */
  upstreamResponseAt = 0;
  localReplyBody: string | null = null;
  /** The request's headers once the connection manager normalised them. */
  headers: HeaderMap | null = null;
  /** The client as trusted (x-forwarded-for with use_remote_address), without port. */
  trustedRemote: string | null = null;

  constructor(
    /** performance.now() when the request's headers came. */
    readonly started: number,
    readonly stream: StreamInfo,
    readonly meter: StreamMeter,
    readonly directRemote: Endpoint | null,
    readonly local: Endpoint | null,
    readonly connectionId: number,
  ) {}

  /** A response flag (and, when given, Envoy's response code details). */
  flag(flag: ResponseFlag, details?: string): void {
    this.flags |= bitOf(flag);
    if (details !== undefined) this.details = details;
  }

  /** Envoy's response code details alone. */
  detail(details: string): void {
    this.details = details;
  }

  /** The request as routed: headers after the manager's rules, the client it trusts. */
  requestHeaders(headers: HeaderMap, trustedRemote: string): void {
    this.headers = headers;
    this.trustedRemote = trustedRemote;
  }

  route(name: string): void {
    this.routeName = name;
  }

  /** The route's cluster exists (%UPSTREAM_CLUSTER%), whether or not a host is found in it. */
  upstreamCluster(name: string): void {
    this.cluster = name;
  }

  /** A try on a host of that cluster (%UPSTREAM_HOST%, %UPSTREAM_REQUEST_ATTEMPT_COUNT%). */
  upstreamAttempt(host: { readonly address: string; readonly port: number }): void {
    this.upstreamHost = { address: host.address, port: host.port };
    this.upstreamAttempts++;
  }

  /** max_stream_duration ended the stream: the reset that follows is the proxy's, not the client's. */
  streamCapped(): void {
    this.flag('UMSDR', 'upstream_max_stream_duration_reached');
    this.#capped = true;
  }

  #capped = false;

  upstreamResponse(): void {
    this.upstreamResponseAt ||= performance.now();
    this.details ??= 'via_upstream';
  }

  upstreamFailed(failure: ForwardFailure, err: Error): void {
    if (failure === 'downstream_reset' && this.#capped) return;
    // A body too large to replay for a retry: Envoy's 507 carries no flag, only its details.
    if (failure === 'retry_buffer_overflow') return this.detail('request_payload_exceeded_retry_buffer_limit');
    const [flag, details] = FAILURES[failure];
    this.flag(flag, details);
    if (failure === 'connect_failure') {
      // Envoy's field holds the transport's own words, spaces as underscores.
      const code = (err as NodeJS.ErrnoException).code;
      this.upstreamFailureReason = (code && code !== 'SM_UPSTREAM_CONNECT_FAILED' ? code : err.message).replace(/\s/g, '_');
    }
  }

  localReply(body: string): void {
    this.localReplyBody = body;
  }

  /** Refused before routing (request-validation.ts): DPE for a malformed request, with Envoy's details. */
  refused(status: number, counter: string | null): void {
    if (counter === 'protocol_error') this.flag('DPE', status === 426 ? 'low_version' : 'http1.codec_error');
    else if (counter === 'non_relative_path') this.details = 'absolute_path_rejected';
    else if (counter === 'failed_path_normalization') this.details = 'path_normalization_failed';
    else if (counter === null && status === 400) this.details = 'missing_host_header';
  }
}
