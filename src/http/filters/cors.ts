import type { RuntimeFraction } from '../../config/base-model';
import { type Ctx, type Pb, at, each, fail, runtimeFraction, stringMatcher } from '../../config/decode/common';
import type { StringMatcher } from '../../config/matcher-model';
import { type Predicate, compileStringMatcher } from '../../router/matchers';
import { type CompiledRoute, randomUint32 } from '../../router/route-table';
import type { Cell } from '../../stats/registry';
import { type HeaderMap, firstValue } from '../headers';
import type { FilterEnv, FilterRequest, FilterStream, HttpFilterKind, HttpFilterRunner, LocalReply } from './types';

// envoy.filters.http.cors: answers CORS preflights itself and adds access-control-* headers to
// the responses of allowed origins. The filter's own config is empty; the policies are per route,
// virtual host and route configuration, and each attribute comes from the most specific policy
// that sets it, as Envoy merges them.

const CORS = 'envoy.extensions.filters.http.cors.v3.Cors';
const CORS_POLICY = 'envoy.extensions.filters.http.cors.v3.CorsPolicy';

interface CorsPolicy {
  readonly allowOrigins: readonly StringMatcher[];
  /** Empty strings and nulls are "not set here": a less specific policy may set them. */
  readonly allowMethods: string;
  readonly allowHeaders: string;
  readonly exposeHeaders: string;
  readonly maxAge: string;
  readonly allowCredentials: boolean | null;
  readonly allowPrivateNetworkAccess: boolean | null;
  readonly forwardNotMatchingPreflights: boolean | null;
  /** Unset: enabled for every request (Envoy's default). */
  readonly filterEnabled: RuntimeFraction | null;
  /** Unset: no shadow mode. */
  readonly shadowEnabled: RuntimeFraction | null;
}

function decodeCorsPolicy(p: Pb, ctx: Ctx): CorsPolicy {
  const text = (field: string): string => {
    const v = String(p[field] ?? '');
    // These go out verbatim as header values, which cannot hold line breaks.
    if (/[\r\n\0]/.test(v)) fail(at(ctx, field), 'must not contain CR, LF or NUL (it is sent as a header value)');
    return v;
  };
  const flag = (field: string): boolean | null => (p[field] === undefined || p[field] === null ? null : Boolean((p[field] as Pb).value));
  return {
    allowOrigins: each(ctx, p, 'allow_origin_string_match', stringMatcher),
    allowMethods: text('allow_methods'),
    allowHeaders: text('allow_headers'),
    exposeHeaders: text('expose_headers'),
    maxAge: text('max_age'),
    allowCredentials: flag('allow_credentials'),
    allowPrivateNetworkAccess: flag('allow_private_network_access'),
    forwardNotMatchingPreflights: flag('forward_not_matching_preflights'),
    filterEnabled: runtimeFraction(p.filter_enabled as Pb | undefined),
    shadowEnabled: runtimeFraction(p.shadow_enabled as Pb | undefined),
  };
}

/** The request's policies, most specific first, each attribute read from the first that sets it. */
class Policies {
  constructor(private readonly list: readonly CorsPolicy[]) {}

  text(get: (p: CorsPolicy) => string): string {
    for (const p of this.list) if (get(p) !== '') return get(p);
    return '';
  }

  flag(get: (p: CorsPolicy) => boolean | null, fallback: boolean): boolean {
    for (const p of this.list) {
      const v = get(p);
      if (v !== null) return v;
    }
    return fallback;
  }

  /** Envoy takes the origin list of the most specific policy that has one. */
  get originPolicy(): CorsPolicy | undefined {
    return this.list.find((p) => p.allowOrigins.length > 0);
  }

  get first(): CorsPolicy {
    return this.list[0]!;
  }
}

function corsStats(env: FilterEnv): { readonly valid: Cell; readonly invalid: Cell } {
  const l = { envoy_http_conn_manager_prefix: env.statPrefix };
  const counter = (name: string, help: string): Cell =>
    env.stats.registry.family('counter', `envoy_http_cors_${name}`, help, ['envoy_http_conn_manager_prefix'],
      (v) => `http.${String(v.envoy_http_conn_manager_prefix)}.cors.${name}`).labels(l);
  return {
    valid: counter('origin_valid', 'Requests whose Origin a CORS policy allows'),
    invalid: counter('origin_invalid', 'Requests whose Origin no CORS policy allows'),
  };
}

class CorsRunner implements HttpFilterRunner<CorsPolicy> {
  readonly #stats: ReturnType<typeof corsStats>;
  readonly #matchers = new WeakMap<CorsPolicy, ReadonlyArray<Predicate<string>>>();

  constructor(private readonly env: FilterEnv) {
    this.#stats = corsStats(env);
  }

  start(request: FilterRequest): FilterStream | null {
    // As Envoy: no route, or a direct response or redirect, and the filter stays out of it.
    if (request.route === null || request.route.route.action.kind !== 'forward') return null;
    const list = policiesOf(request.route, this.env.filterName);
    if (list.length === 0) return null;
    // No Origin: not a CORS request, and not counted.
    const origin = firstValue(request.headers.origin);
    if (!origin) return null;
    return new CorsStream(this, new Policies(list), request, origin);
  }

  /**
   * The request's verdict, once the filters before this one let it through: a preflight's
   * answer, or the origin to echo on the response (null: the response is left alone).
   */
  judge(policies: Policies, request: FilterRequest, origin: string): { reply?: LocalReply; echo: string | null } {
    const enabled = this.#sample(policies.first.filterEnabled, true);
    if (!enabled && !this.#sample(policies.first.shadowEnabled, false)) return { echo: null };
    const allowed = this.#allowed(policies, origin);
    (allowed ? this.#stats.valid : this.#stats.invalid).inc();
    // Shadow mode: the origin is judged and counted, nothing more.
    if (!enabled) return { echo: null };
    const echo = allowed ? origin : null;
    const requestedMethod = firstValue(request.headers['access-control-request-method']);
    if (request.method !== 'OPTIONS' || !requestedMethod) return { echo };
    if (!allowed && policies.flag((p) => p.forwardNotMatchingPreflights, true)) return { echo };
    return { reply: preflight(policies, request.headers, echo, requestedMethod), echo };
  }

  #sample(fraction: RuntimeFraction | null, unset: boolean): boolean {
    if (fraction === null) return unset;
    return this.env.runtime.featureEnabled(fraction.runtimeKey, fraction.defaultValue, randomUint32());
  }

  /** A matcher that matches "*" allows every origin, as in Envoy. */
  #allowed(policies: Policies, origin: string): boolean {
    const p = policies.originPolicy;
    return p !== undefined && this.#compiled(p).some((m) => m('*') || m(origin));
  }

  #compiled(p: CorsPolicy): ReadonlyArray<Predicate<string>> {
    let m = this.#matchers.get(p);
    if (!m) this.#matchers.set(p, (m = p.allowOrigins.map(compileStringMatcher)));
    return m;
  }
}

class CorsStream implements FilterStream {
  #echo: string | null = null;

  constructor(private readonly runner: CorsRunner, private readonly policies: Policies, private readonly request: FilterRequest,
    private readonly origin: string) {}

  decodeHeaders(): LocalReply | undefined {
    const { reply, echo } = this.runner.judge(this.policies, this.request, this.origin);
    this.#echo = echo;
    return reply;
  }

  encodeHeaders(_status: number, headers: HeaderMap): void {
    if (this.#echo !== null) addResponseHeaders(this.policies, headers, this.#echo);
  }
}

/** The filter's CorsPolicy on the route, its virtual host and its route configuration, in that order. */
function policiesOf(route: CompiledRoute, name: string): CorsPolicy[] {
  const out: CorsPolicy[] = [];
  for (const level of [route.route.perFilter, route.vhost.perFilter, route.config.perFilter]) {
    const c = level.get(name);
    if (c && !c.disabled && c.settings) out.push(c.settings as CorsPolicy);
  }
  return out;
}

/** The preflight answer; `origin` null when it is not allowed (forward_not_matching_preflights: false). */
function preflight(policies: Policies, request: HeaderMap, origin: string | null, requestedMethod: string): LocalReply {
  const headers: Record<string, string> = {};
  if (origin !== null) headers['access-control-allow-origin'] = origin;
  if (policies.flag((p) => p.allowCredentials, false)) headers['access-control-allow-credentials'] = 'true';
  const methods = policies.text((p) => p.allowMethods);
  // "*" echoes what the browser asks for.
  if (methods) headers['access-control-allow-methods'] = methods === '*' ? requestedMethod : methods;
  const allowHeaders = policies.text((p) => p.allowHeaders);
  if (allowHeaders) headers['access-control-allow-headers'] = allowHeaders === '*' ? firstValue(request['access-control-request-headers']) ?? '' : allowHeaders;
  const maxAge = policies.text((p) => p.maxAge);
  if (maxAge) headers['access-control-max-age'] = maxAge;
  if (policies.flag((p) => p.allowPrivateNetworkAccess, false) && firstValue(request['access-control-request-private-network']) === 'true') {
    headers['access-control-allow-private-network'] = 'true';
  }
  return { status: 200, headers, details: 'cors_response' };
}

/** An allowed origin's actual response: the origin echoed, credentials and exposed headers. */
function addResponseHeaders(policies: Policies, headers: HeaderMap, origin: string): void {
  headers['access-control-allow-origin'] = origin;
  if (policies.flag((p) => p.allowCredentials, false)) headers['access-control-allow-credentials'] = 'true';
  const expose = policies.text((p) => p.exposeHeaders);
  if (expose) headers['access-control-expose-headers'] = expose;
}

export const corsFilter: HttpFilterKind<null, CorsPolicy> = {
  configType: CORS,
  perRouteTypes: [CORS_POLICY],
  decode: () => null,
  decodePerRoute: decodeCorsPolicy,
  build: (_settings, env) => new CorsRunner(env),
};
