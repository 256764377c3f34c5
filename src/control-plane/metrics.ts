import { Counter, Gauge, Registry } from 'prom-client';

// The control plane's own Prometheus registry: it is a separate program from the sidecar, and a
// private registry keeps tests (several control planes in one process) from sharing counters.

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly connectedStreams = new Gauge({
    name: 'sidemirror_cp_connected_streams',
    help: 'Open xDS streams (ADS and per-type)',
    registers: [this.registry],
  });
  readonly responses = new Counter({
    name: 'sidemirror_cp_responses_sent_total',
    help: 'DiscoveryResponses sent, by resource type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly acks = new Counter({
    name: 'sidemirror_cp_acks_total',
    help: 'ACKs received, by resource type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly nacks = new Counter({
    name: 'sidemirror_cp_nacks_total',
    help: 'NACKs received (error_detail set), by resource type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly nackDetailsTruncated = new Counter({
    name: 'sidemirror_cp_nack_details_truncated_total',
    help: 'NACK error_detail messages cut to 4 KiB before being kept and logged',
    registers: [this.registry],
  });
  readonly streamsRefused = new Counter({
    name: 'sidemirror_cp_streams_refused_total',
    help: 'xDS streams and fetches refused: unauthenticated (no or wrong bearer token), node_too_large',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly tlsConnectionsRefused = new Counter({
    name: 'sidemirror_cp_xds_tls_connections_refused_total',
    help: 'xDS connections refused by TLS: no_client_certificate, bad_client_certificate, no_h2_alpn, handshake (any other failure)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly nodeRecordsForgotten = new Counter({
    name: 'sidemirror_cp_node_records_forgotten_total',
    help: 'Records of disconnected nodes dropped to stay under the count or bytes cap',
    registers: [this.registry],
  });
  readonly adminRequestsRefused = new Counter({
    name: 'sidemirror_cp_admin_requests_refused_total',
    help: 'Admin API requests refused: unauthorized (401), foreign_origin (403), too_large (413)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
}
