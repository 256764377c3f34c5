import type { ExtMirrorPolicy, ForwardAction, MirrorPolicy, Route, RouteConfiguration, VirtualHost } from '../config/model';
import type { CompiledExtPolicy } from '../shadow/ext-policy';
import type { Runtime } from '../runtime/runtime';
import type { Re2Rewrite } from '../util/re2';
import { type HeaderLookup, type Predicate, compileConfigRewrite, compileHeaderMatcher, compilePathMatcher, compileQueryMatcher } from './matchers';

/** A route ready for matching, with the mirror policies already resolved (route, else vhost, else config). */
export interface CompiledRoute {
  readonly route: Route;
  readonly vhost: VirtualHost;
  /** The route configuration holding both, for its own per-filter settings and header edits. */
  readonly config: RouteConfiguration;
  /** Envoy's rule: the most specific non-empty list wins; lists are never merged. */
  readonly mirrorPolicies: readonly MirrorPolicy[];
  /** sidemirror's extended policies for this listener's mirror filter (route, else virtual host). */
  readonly extPolicies: readonly CompiledExtPolicy[];
  readonly matchPath: Predicate<string>;
  readonly matchHeaders: ReadonlyArray<Predicate<HeaderLookup>>;
  readonly matchQuery: ReadonlyArray<Predicate<URLSearchParams>>;
  /** The forward action's regex_rewrite, compiled once. */
  readonly regexRewrite: Re2Rewrite | null;
}

/** How a listener's mirror filter turns a route's extended policies into running ones. */
export interface ExtPolicyCompiler {
  /** The mirror filter's name in http_filters: the key of typed_per_filter_config. */
  readonly filterName: string;
  compile(policies: readonly ExtMirrorPolicy[]): CompiledExtPolicy[];
}

interface CompiledVirtualHost {
  readonly vhost: VirtualHost;
  readonly routes: readonly CompiledRoute[];
}

/** What the router needs of a request to pick a route. */
export interface RouteQuery {
  /** The Host header, lowercased. */
  readonly authority: string;
  /** The request target, with its query string. */
  readonly path: string;
  readonly header: HeaderLookup;
}

/**
 * A compiled route configuration: virtual hosts indexed by domain in Envoy's search order (exact,
 * then `*.suffix` longest first, then `prefix.*` longest first, then `*`), then routes in order.
 */
export class RouteTable {
  readonly #exact = new Map<string, CompiledVirtualHost>();
  readonly #suffixes: Array<[string, CompiledVirtualHost]> = [];
  readonly #prefixes: Array<[string, CompiledVirtualHost]> = [];
  #catchAll: CompiledVirtualHost | null = null;

  constructor(
    readonly config: RouteConfiguration,
    private readonly runtime: Runtime,
    ext: ExtPolicyCompiler | null = null,
  ) {
    for (const vhost of config.virtualHosts) {
      const compiled: CompiledVirtualHost = { vhost, routes: vhost.routes.map((r) => compileRoute(r, vhost, config, ext)) };
      for (const raw of vhost.domains) {
        const domain = raw.toLowerCase();
        if (domain === '*') this.#catchAll = compiled;
        else if (domain.startsWith('*')) this.#suffixes.push([domain.slice(1), compiled]);
        else if (domain.endsWith('*')) this.#prefixes.push([domain.slice(0, -1), compiled]);
        else this.#exact.set(domain, compiled);
      }
    }
    this.#suffixes.sort((a, b) => b[0].length - a[0].length);
    this.#prefixes.sort((a, b) => b[0].length - a[0].length);
  }

  /** The first matching route of the selected virtual host, or null (a 404). */
  match(q: RouteQuery): CompiledRoute | null {
    const vh = this.#virtualHost(q.authority);
    if (!vh) return null;
    let params: URLSearchParams | null = null;
    for (const r of vh.routes) {
      if (!r.matchPath(q.path)) continue;
      if (r.matchHeaders.length > 0 && !r.matchHeaders.every((m) => m(q.header))) continue;
      if (r.matchQuery.length > 0) {
        params ??= new URLSearchParams(queryOf(q.path));
        const p = params;
        if (!r.matchQuery.every((m) => m(p))) continue;
      }
      const rf = r.route.match.runtimeFraction;
      if (rf && !this.runtime.featureEnabled(rf.runtimeKey, rf.defaultValue, randomUint32())) continue;
      return r;
    }
    return null;
  }

  #virtualHost(authority: string): CompiledVirtualHost | null {
    const exact = this.#exact.get(authority);
    if (exact) return exact;
    // A wildcard must stand for at least one character, as in Envoy.
    for (const [suffix, vh] of this.#suffixes) if (authority.length > suffix.length && authority.endsWith(suffix)) return vh;
    for (const [prefix, vh] of this.#prefixes) if (authority.length > prefix.length && authority.startsWith(prefix)) return vh;
    return this.#catchAll;
  }
}

function compileRoute(route: Route, vhost: VirtualHost, config: RouteConfiguration, ext: ExtPolicyCompiler | null): CompiledRoute {
  let extPolicies: CompiledExtPolicy[] = [];
  if (ext !== null && route.action.kind === 'forward') {
    const own = route.extMirrorPolicies.get(ext.filterName) ?? [];
    extPolicies = ext.compile(own.length > 0 ? own : vhost.extMirrorPolicies.get(ext.filterName) ?? []);
  }
  const own = route.action.kind === 'forward' ? (route.action as ForwardAction).mirrorPolicies : [];
  const mirrorPolicies = own.length > 0 ? own : vhost.mirrorPolicies.length > 0 ? vhost.mirrorPolicies : config.mirrorPolicies;
  return {
    route,
    vhost,
    config,
    mirrorPolicies: route.action.kind === 'forward' ? mirrorPolicies : [],
    extPolicies,
    matchPath: compilePathMatcher(route.match.path, route.match.caseSensitive),
    matchHeaders: route.match.headers.map(compileHeaderMatcher),
    matchQuery: route.match.queryParameters.map(compileQueryMatcher),
    regexRewrite: route.action.kind === 'forward' && route.action.regexRewrite !== null ? compileConfigRewrite(route.action.regexRewrite) : null,
  };
}

function queryOf(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? '' : path.slice(q + 1);
}

export function randomUint32(): number {
  return (Math.random() * 0x100000000) >>> 0;
}
