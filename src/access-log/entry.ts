// What one access log line is made from: Envoy's StreamInfo plus the headers, as far as sidemirror
// knows them. Request lines, shadow lines and connection lines all fill this one shape; what a
// kind of line does not know is null (rendered "-", as Envoy renders what a TCP log lacks).

/** A header lookup by lower-case name; pseudo headers (`:path`) included where they exist. */
export type HeaderGet = (name: string) => string | undefined;

export interface Endpoint {
  readonly address: string;
  /** 0 when the port is not known (an address taken from x-forwarded-for). */
  readonly port: number;
}

/** A shadow's ending, on a shadow logger's line. */
export interface ShadowFacts {
  readonly cluster: string;
  readonly outcome: string;
  readonly reason: string;
  /** The extended policy that sent it; null for Envoy's request_mirror_policies. */
  readonly policy: string | null;
}

export interface LogEntry {
  /** Wall clock at the start, ms since the epoch with sub-ms digits. */
  readonly startEpochMs: number;
  /** ms from the start to the end (the last byte out, or the connection's close). */
  readonly durationMs: number;
  /** ms from the start to the last byte of the request; null when it never all came. */
  readonly requestDurationMs: number | null;
  /** ms from the start to the first byte of the upstream's response; null when none came. */
  readonly responseDurationMs: number | null;
  /** HTTP/1.1 or HTTP/2; null on connection lines. */
  readonly protocol: string | null;
  readonly requestHeader: HeaderGet | null;
  readonly responseHeader: HeaderGet | null;
  readonly responseTrailer: HeaderGet | null;
  /** 0: no response was sent. */
  readonly responseCode: number;
  readonly responseCodeDetails: string | null;
  /** Bits of RESPONSE_FLAGS (response-flags.ts). */
  readonly responseFlags: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly upstreamHost: Endpoint | null;
  readonly upstreamCluster: string | null;
  readonly upstreamTransportFailureReason: string | null;
  readonly upstreamAttempts: number;
  readonly routeName: string | null;
  /** The client as the connection manager trusts it (x-forwarded-for with use_remote_address). */
  readonly downstreamRemote: Endpoint | null;
  /** The peer of the TCP connection. */
  readonly downstreamDirectRemote: Endpoint | null;
  readonly downstreamLocal: Endpoint | null;
  readonly connectionId: number;
  readonly requestedServerName: string | null;
  readonly localReplyBody: string | null;
  readonly shadow: ShadowFacts | null;
}

/** What a connection-level line (a listener's, a TCP proxy's) knows; the HTTP fields stay empty. */
export interface ConnectionFacts {
  readonly startEpochMs: number;
  readonly durationMs: number;
  readonly responseFlags: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly upstreamHost: Endpoint | null;
  readonly upstreamCluster: string | null;
  readonly downstreamRemote: Endpoint | null;
  readonly downstreamLocal: Endpoint | null;
  readonly connectionId: number;
}

/** A line for a connection: the HTTP operators render "-", as in Envoy's TCP lines. */
export function connectionEntry(c: ConnectionFacts): LogEntry {
  return {
    ...c,
    requestDurationMs: null,
    responseDurationMs: null,
    protocol: null,
    requestHeader: null,
    responseHeader: null,
    responseTrailer: null,
    responseCode: 0,
    responseCodeDetails: null,
    upstreamTransportFailureReason: null,
    upstreamAttempts: c.upstreamHost === null ? 0 : 1,
    routeName: null,
    downstreamDirectRemote: c.downstreamRemote,
    requestedServerName: null,
    localReplyBody: null,
    shadow: null,
  };
}
