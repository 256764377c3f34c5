/**
 * An HTTP filter's per-route settings (typed_per_filter_config on a route, virtual host or route
 * configuration), decoded by the filter that owns the message type. `settings` is the filter's
 * own model; only that filter reads it.
 */
export interface PerFilterConfig {
  /** Envoy's FilterConfig.disabled: the filter does not run for requests on this route. */
  readonly disabled: boolean;
  readonly settings: unknown;
}

export type PerFilterConfigs = ReadonlyMap<string, PerFilterConfig>;
