import type { ClusterSpecifier, ForwardAction, HeaderEdits, RedirectAction } from '../config/model';
import { type HeaderMap, applyHeadersToAdd, firstListValue, firstValue, removeHeaders } from '../http/headers';
import type { Host } from '../upstream/host';
import type { HeaderLookup } from './matchers';
import type { CompiledRoute } from './route-table';

// Pure route-action helpers (Envoy keeps these in FilterUtility and RouteEntryImplBase):
// which cluster, which path, which Host, which header edits.

/** The cluster name a forward action picks for this request, or '' when it names none. */
export function chooseCluster(spec: ClusterSpecifier, header: HeaderLookup, random: number): string {
  switch (spec.kind) {
    case 'cluster':
      return spec.name;
    case 'cluster_header':
      return firstListValue(header(spec.header));
    case 'weighted_clusters': {
      let point = random % spec.totalWeight;
      for (const c of spec.clusters) {
        if (point < c.weight) return c.name;
        point -= c.weight;
      }
      return spec.clusters[spec.clusters.length - 1]!.name;
    }
  }
}

/** The path sent upstream after prefix_rewrite or regex_rewrite. */
export function rewritePath(action: ForwardAction, route: CompiledRoute, path: string): string {
  if (action.prefixRewrite !== null) {
    const m = route.route.match.path;
    const queryAt = path.indexOf('?');
    const query = queryAt < 0 ? '' : path.slice(queryAt);
    const bare = queryAt < 0 ? path : path.slice(0, queryAt);
    if (m.kind === 'prefix' || m.kind === 'path_separated_prefix') return action.prefixRewrite + bare.slice(m.value.length) + query;
    if (m.kind === 'path') return action.prefixRewrite + query;
    return path;
  }
  if (route.regexRewrite !== null) {
    // Envoy rewrites the path without its query string and keeps the query as it was.
    const queryAt = path.indexOf('?');
    const bare = queryAt < 0 ? path : path.slice(0, queryAt);
    const query = queryAt < 0 ? '' : path.slice(queryAt);
    return route.regexRewrite.replaceAll(bare) + query;
  }
  return path;
}

/** Applies the route's host rewrite (literal, from a header, or the chosen host's name). */
export function rewriteHost(action: ForwardAction, headers: HeaderMap, host: Host, weightedLiteral: string | null): void {
  const literal = weightedLiteral ?? action.hostRewriteLiteral;
  if (literal !== null) headers.host = literal;
  else if (action.hostRewriteHeader !== null) {
    const v = firstValue(headers[action.hostRewriteHeader]);
    if (v) headers.host = v;
  } else if (action.autoHostRewrite && host.hostname) {
    headers.host = host.hostname;
  }
}

/** Route, then virtual host, then route configuration request header edits, as Envoy orders them. */
export function applyRequestHeaderEdits(route: CompiledRoute, headers: HeaderMap, rcEdits: HeaderEdits, format: (v: string) => string): void {
  for (const e of [route.route, route.vhost, rcEdits]) {
    removeHeaders(headers, e.requestHeadersToRemove);
    applyHeadersToAdd(headers, e.requestHeadersToAdd, format);
  }
}

export function applyResponseHeaderEdits(route: CompiledRoute, headers: HeaderMap, rcEdits: HeaderEdits, format: (v: string) => string): void {
  for (const e of [route.route, route.vhost, rcEdits]) {
    removeHeaders(headers, e.responseHeadersToRemove);
    applyHeadersToAdd(headers, e.responseHeadersToAdd, format);
  }
}

/** The Location of a redirect route, built from the request as Envoy does. */
export function redirectLocation(r: RedirectAction, route: CompiledRoute, authority: string, path: string, scheme: string): string {
  let host = authority;
  let port = '';
  const colon = authority.lastIndexOf(':');
  if (colon > 0 && !authority.endsWith(']')) {
    host = authority.slice(0, colon);
    port = authority.slice(colon);
  }
  const newScheme = r.scheme ?? scheme;
  if (r.host !== null) host = r.host;
  if (r.port !== null) port = `:${r.port}`;
  else if (r.scheme !== null && r.scheme !== scheme) port = '';
  let newPath = path;
  const queryAt = path.indexOf('?');
  const query = queryAt < 0 ? '' : path.slice(queryAt);
  if (r.path !== null) newPath = r.path + (r.path.includes('?') ? '' : query);
  else if (r.prefixRewrite !== null && route.route.match.path.kind === 'prefix') newPath = r.prefixRewrite + path.slice(route.route.match.path.value.length);
  if (r.stripQuery) {
    const q = newPath.indexOf('?');
    if (q >= 0) newPath = newPath.slice(0, q);
  }
  return `${newScheme}://${host}${port}${newPath}`;
}
