import { corsFilter } from './cors';
import { csrfFilter } from './csrf';
import { faultFilter } from './fault';
import { healthCheckFilter } from './health-check';
import { rbacFilter } from './rbac';
import { localRateLimitFilter } from './local-ratelimit';
import type { HttpFilterKind } from './types';

// Every HTTP filter sidemirror runs besides the router and the mirror filter (which the
// connection manager drives itself). Adding a filter is one module and one line here.
const KINDS: readonly HttpFilterKind<never, never>[] = [
  corsFilter,
  csrfFilter,
  faultFilter,
  healthCheckFilter,
  rbacFilter,
  localRateLimitFilter,
] as unknown as readonly HttpFilterKind<never, never>[];

const BY_CONFIG = new Map<string, HttpFilterKind>(KINDS.map((k) => [k.configType, k as HttpFilterKind]));
const BY_PER_ROUTE = new Map<string, HttpFilterKind>(
  KINDS.flatMap((k) => (k.perRouteTypes ?? []).map((t) => [t, k as HttpFilterKind] as const)),
);

/** The filter whose typed_config is a `typeName` message. */
export function filterKind(typeName: string): HttpFilterKind | undefined {
  return BY_CONFIG.get(typeName);
}

/** The filter that reads `typeName` messages in typed_per_filter_config. */
export function perRouteFilterKind(typeName: string): HttpFilterKind | undefined {
  return BY_PER_ROUTE.get(typeName);
}

/** The typed_config message names of the filters above, for README and error messages. */
export function filterConfigTypes(): string[] {
  return [...BY_CONFIG.keys()];
}
