/** What the connection and codec stages know of a request stream, for the connection manager. */
export interface StreamInfo {
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  /** https when the downstream connection is TLS. */
  readonly scheme: 'http' | 'https';
  readonly tls: DownstreamTlsInfo | null;
}

/** The downstream TLS session, as far as routing, headers and logs use it. */
export interface DownstreamTlsInfo {
  readonly serverName: string | null;
  readonly alpn: string | null;
  /** The client certificate's SANs (Node's subjectaltname form), '' when none was presented. */
  readonly peerSubjectAltNames: string;
}
