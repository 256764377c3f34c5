/** Where an endpoint sits for load balancing and how it is health checked, from its LocalityLbEndpoints and Endpoint. */
export interface EndpointPlacement {
  /** LocalityLbEndpoints.priority: 0 is used first; higher levels take what lower ones cannot. */
  readonly priority: number;
  /** The locality as `region/zone/sub_zone`; endpoints with one key share a locality. */
  readonly locality: string;
  /** LocalityLbEndpoints.load_balancing_weight; 0 when unset (no load under locality-weighted balancing, as Envoy). */
  readonly localityWeight: number;
  /** Endpoint.health_check_config.port_value; null: the endpoint's own port. */
  readonly healthCheckPort: number | null;
  /** Endpoint.health_check_config.hostname: the health check's Host header when set. */
  readonly healthCheckHostname: string;
}

/** An endpoint given without LocalityLbEndpoints details: priority 0, no locality, checked on its own port. */
export const DEFAULT_PLACEMENT: EndpointPlacement = { priority: 0, locality: '//', localityWeight: 0, healthCheckPort: null, healthCheckHostname: '' };
