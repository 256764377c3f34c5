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
}
