import type {
  ClusterSpecifier,
  ExtMirrorPolicy,
  ForwardAction,
  HashPolicy,
  MaxStreamDuration,
  MirrorPolicy,
  QueryParameterMatcher,
  Route,
  RouteActionModel,
  RouteConfiguration,
  RouteMatch,
  VirtualHost,
  WeightedClusterEntry,
} from '../model';
import {
  type Ctx,
  type Pb,
  at,
  atIndex,
  atKey,
  durationMs,
  each,
  fail,
  headerEdits,
  refuse,
  headerMutation,
  regexMatchAndSubstitute,
  regexMatcher,
  runtimeFraction,
  stringMatcher,
  typedConfigMap,
  typeUrlName,
  wrapped,
} from './common';
import { decodeHeaderMatcher } from './header-matcher';
import { decodePerFilterConfig } from './per-filter';
import { attemptHeaders, bufferLimit, decodeRetryPolicy } from './retry';
import { upgradeType } from './upgrade';

/** Envoy's default route timeout. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

export function decodeRouteConfiguration(rc: Pb, ctx: Ctx): RouteConfiguration {
  const virtualHosts = each(ctx, rc, 'virtual_hosts', decodeVirtualHost);
  checkDomainsUnique(virtualHosts, ctx);
  return {
    name: String(rc.name ?? ''),
    virtualHosts,
    mirrorPolicies: each(ctx, rc, 'request_mirror_policies', decodeMirrorPolicy),
    validateClusters: rc.validate_clusters === undefined ? null : wrapped(rc.validate_clusters, false),
    internalOnlyHeaders: internalOnlyHeaders(rc, ctx),
    perFilter: decodePerFilterConfig(rc.typed_per_filter_config as Pb | undefined, at(ctx, 'typed_per_filter_config')).perFilter,
    ...headerEdits(rc, ctx),
  };
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** internal_only_headers, lowercased; pseudo-headers and Host cannot be removed this way. */
function internalOnlyHeaders(rc: Pb, ctx: Ctx): string[] {
  return ((rc.internal_only_headers as string[] | undefined) ?? []).map((raw, i) => {
    const name = String(raw).toLowerCase();
    if (name === 'host' || name.startsWith(':')) fail(atIndex(ctx, 'internal_only_headers', i), `header "${raw}" cannot be removed`);
    else if (!HEADER_NAME.test(name)) fail(atIndex(ctx, 'internal_only_headers', i), `"${raw}" is not a valid header name`);
    return name;
  });
}

function checkDomainsUnique(vhosts: readonly VirtualHost[], ctx: Ctx): void {
  const seen = new Map<string, string>();
  vhosts.forEach((vh, i) => {
    for (const d of vh.domains) {
      const key = d.toLowerCase();
      const owner = seen.get(key);
      if (owner !== undefined) {
        fail(at(atIndex(ctx, 'virtual_hosts', i), 'domains'), `domain "${d}" is also used by virtual host "${owner}"`);
      }
      seen.set(key, vh.name);
    }
  });
}

export function decodeVirtualHost(vh: Pb, ctx: Ctx): VirtualHost {
  const name = String(vh.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  const domains = ((vh.domains as string[] | undefined) ?? []).map(String);
  if (domains.length === 0) fail(at(ctx, 'domains'), 'at least one domain is required');
  domains.forEach((d, i) => {
    if (d !== '*' && d.indexOf('*') !== d.lastIndexOf('*')) fail(at(ctx, `domains[${i}]`), `"${d}" may hold at most one wildcard`);
    else if (d !== '*' && d.includes('*') && !d.startsWith('*') && !d.endsWith('*')) {
      fail(at(ctx, `domains[${i}]`), `wildcard in "${d}" must be the first or last character`);
    }
  });
  if (vh.require_tls && vh.require_tls !== 'NONE') fail(at(ctx, 'require_tls'), `${vh.require_tls} is not supported by sidemirror`);
  return {
    name,
    domains,
    routes: each(ctx, vh, 'routes', decodeRoute),
    mirrorPolicies: each(ctx, vh, 'request_mirror_policies', decodeMirrorPolicy),
    retryPolicy: vh.retry_policy ? decodeRetryPolicy(vh.retry_policy as Pb, at(ctx, 'retry_policy')) : null,
    ...decodePerFilterConfig(vh.typed_per_filter_config as Pb | undefined, at(ctx, 'typed_per_filter_config')),
    ...headerEdits(vh, ctx),
    perRequestBufferLimitBytes: bufferLimit(vh),
    attemptHeaders: attemptHeaders(vh),
  };
}

export { decodeHeaderMatcher } from './header-matcher';

export function decodeRoute(r: Pb, ctx: Ctx): Route {
  const actions = ['route', 'redirect', 'direct_response'].filter((k) => r[k] !== undefined);
  let action: RouteActionModel;
  if (actions.length !== 1) {
    fail(ctx, actions.length === 0 ? 'one of route, redirect or direct_response is required' : `only one of ${actions.join(', ')} may be set`);
    action = { kind: 'direct_response', status: 500, body: null };
  } else if (r.route) {
    action = decodeForwardAction(r.route as Pb, at(ctx, 'route'));
  } else if (r.redirect) {
    action = decodeRedirect(r.redirect as Pb, at(ctx, 'redirect'));
  } else {
    action = decodeDirectResponse(r.direct_response as Pb, at(ctx, 'direct_response'));
  }
  return {
    name: String(r.name ?? ''),
    match: decodeRouteMatch((r.match ?? {}) as Pb, at(ctx, 'match')),
    action,
    ...decodePerFilterConfig(r.typed_per_filter_config as Pb | undefined, at(ctx, 'typed_per_filter_config')),
    ...headerEdits(r, ctx),
    perRequestBufferLimitBytes: bufferLimit(r),
  };
}

function decodeRouteMatch(m: Pb, ctx: Ctx): RouteMatch {
  const specifiers = ['prefix', 'path', 'safe_regex', 'path_separated_prefix'].filter((k) => m[k] !== undefined);
  let path: RouteMatch['path'] = { kind: 'prefix', value: '/' };
  if (specifiers.length !== 1) {
    fail(ctx, specifiers.length === 0 ? 'one of prefix, path, safe_regex or path_separated_prefix is required' : `only one of ${specifiers.join(', ')} may be set`);
  } else if (m.safe_regex) {
    path = { kind: 'safe_regex', value: regexMatcher(m.safe_regex as Pb, at(ctx, 'safe_regex')) };
  } else {
    const kind = specifiers[0] as 'prefix' | 'path' | 'path_separated_prefix';
    const value = String(m[kind]);
    if (kind === 'path_separated_prefix' && (value.endsWith('/') || /[?#]/.test(value))) {
      fail(at(ctx, kind), 'must not end with "/" or contain "?" or "#"');
    }
    path = { kind, value };
  }
  return {
    path,
    caseSensitive: wrapped(m.case_sensitive, true),
    headers: each(ctx, m, 'headers', decodeHeaderMatcher),
    queryParameters: each(ctx, m, 'query_parameters', decodeQueryParameterMatcher),
    runtimeFraction: runtimeFraction(m.runtime_fraction as Pb | undefined),
    grpc: m.grpc !== undefined && m.grpc !== null,
  };
}

function decodeQueryParameterMatcher(q: Pb, ctx: Ctx): QueryParameterMatcher {
  const name = String(q.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  if (q.string_match) return { name, matcher: stringMatcher(q.string_match as Pb, at(ctx, 'string_match')) };
  return { name, matcher: null };
}

const CLUSTER_NOT_FOUND_CODES: Record<string, number> = { SERVICE_UNAVAILABLE: 503, NOT_FOUND: 404, INTERNAL_SERVER_ERROR: 500 };

function decodeForwardAction(a: Pb, ctx: Ctx): RouteActionModel {
  const specifiers = ['cluster', 'cluster_header', 'weighted_clusters'].filter((k) => a[k] !== undefined && a[k] !== '');
  let cluster: ClusterSpecifier = { kind: 'cluster', name: '' };
  if (specifiers.length !== 1) {
    fail(ctx, specifiers.length === 0 ? 'one of cluster, cluster_header or weighted_clusters is required' : `only one of ${specifiers.join(', ')} may be set`);
  } else if (a.cluster !== undefined) {
    cluster = { kind: 'cluster', name: String(a.cluster) };
  } else if (a.cluster_header !== undefined) {
    cluster = { kind: 'cluster_header', header: String(a.cluster_header).toLowerCase() };
  } else {
    cluster = decodeWeightedClusters(a.weighted_clusters as Pb, at(ctx, 'weighted_clusters'));
  }
  if (a.prefix_rewrite !== undefined && a.regex_rewrite !== undefined) fail(ctx, 'only one of prefix_rewrite, regex_rewrite may be set');
  const regexRewrite = a.regex_rewrite ? regexMatchAndSubstitute(a.regex_rewrite as Pb, at(ctx, 'regex_rewrite')) : null;
  const hostRewrites = ['host_rewrite_literal', 'auto_host_rewrite', 'host_rewrite_header'].filter((k) => a[k] !== undefined);
  if (hostRewrites.length > 1) fail(ctx, `only one of ${hostRewrites.join(', ')} may be set`);
  return {
    kind: 'forward',
    cluster,
    clusterNotFoundResponseCode: CLUSTER_NOT_FOUND_CODES[String(a.cluster_not_found_response_code ?? 'SERVICE_UNAVAILABLE')] ?? 503,
    prefixRewrite: a.prefix_rewrite === undefined ? null : String(a.prefix_rewrite),
    regexRewrite,
    hostRewriteLiteral: a.host_rewrite_literal ? String(a.host_rewrite_literal) : null,
    hostRewriteHeader: a.host_rewrite_header ? String(a.host_rewrite_header).toLowerCase() : null,
    autoHostRewrite: wrapped(a.auto_host_rewrite, false),
    // A route with max_stream_duration has no router timeout in Envoy (using_new_timeouts_).
    timeoutMs: a.max_stream_duration ? 0 : durationMs(a.timeout as Pb | undefined, DEFAULT_ROUTE_TIMEOUT_MS),
    idleTimeoutMs: a.idle_timeout ? durationMs(a.idle_timeout as Pb, 0) : null,
    retryPolicy: a.retry_policy ? decodeRetryPolicy(a.retry_policy as Pb, at(ctx, 'retry_policy')) : null,
    mirrorPolicies: each(ctx, a, 'request_mirror_policies', decodeMirrorPolicy),
    hashPolicy: each(ctx, a, 'hash_policy', decodeHashPolicy).filter((p): p is HashPolicy => p !== null),
    maxStreamDuration: maxStreamDuration(a),
    upgradeConfigs: routeUpgradeConfigs(a, ctx),
  };
}

/**
 * max_stream_duration, or else the deprecated max_grpc_timeout/grpc_timeout_offset: Envoy reads
 * the legacy fields only when max_stream_duration is absent (RouteEntryImplBase's
 * using_new_timeouts_), and so does this.
 */
function maxStreamDuration(a: Pb): MaxStreamDuration {
  const msd = a.max_stream_duration as Pb | undefined;
  if (msd) {
    return {
      maxStreamDurationMs: durationMs(msd.max_stream_duration as Pb | undefined, 0),
      grpcTimeoutHeaderMaxMs: msd.grpc_timeout_header_max ? durationMs(msd.grpc_timeout_header_max as Pb, 0) : null,
      grpcTimeoutHeaderOffsetMs: durationMs(msd.grpc_timeout_header_offset as Pb | undefined, 0),
      legacy: false,
    };
  }
  if (!a.max_grpc_timeout && !a.grpc_timeout_offset) return NO_MAX_STREAM_DURATION;
  return {
    maxStreamDurationMs: 0,
    grpcTimeoutHeaderMaxMs: a.max_grpc_timeout ? durationMs(a.max_grpc_timeout as Pb, 0) : null,
    grpcTimeoutHeaderOffsetMs: durationMs(a.grpc_timeout_offset as Pb | undefined, 0),
    legacy: true,
  };
}

const NO_MAX_STREAM_DURATION: MaxStreamDuration = { maxStreamDurationMs: 0, grpcTimeoutHeaderMaxMs: null, grpcTimeoutHeaderOffsetMs: 0, legacy: false };
const NO_UPGRADES: ReadonlyMap<string, boolean> = new Map();

/** upgrade_configs on a route: upgrade type (lower case) → enabled (default true). */
function routeUpgradeConfigs(a: Pb, ctx: Ctx): ForwardAction['upgradeConfigs'] {
  if (!(a.upgrade_configs as Pb[] | undefined)?.length) return NO_UPGRADES;
  const out = new Map<string, boolean>();
  each(ctx, a, 'upgrade_configs', (u, uctx) => {
    const type = upgradeType(u, uctx);
    if (type === null) return;
    const lower = type.toLowerCase();
    if (out.has(lower)) fail(at(uctx, 'upgrade_type'), `Duplicate upgrade ${type}`);
    else out.set(lower, wrapped(u.enabled, true));
  });
  return out;
}

function decodeWeightedClusters(w: Pb, ctx: Ctx): ClusterSpecifier {
  refuse(w, ctx, ['runtime_key_prefix', 'header_name']);
  const clusters = each(ctx, w, 'clusters', (c, cctx): WeightedClusterEntry => {
    refuse(c, cctx, ['typed_per_filter_config']);
    const name = String(c.name ?? '');
    if (!name) fail(at(cctx, 'name'), 'name is required');
    return {
      name,
      weight: wrapped(c.weight, 0),
      hostRewriteLiteral: c.host_rewrite_literal ? String(c.host_rewrite_literal) : null,
      ...headerEdits(c, cctx),
    };
  });
  if (clusters.length === 0) fail(at(ctx, 'clusters'), 'at least one cluster is required');
  const sum = clusters.reduce((s, c) => s + c.weight, 0);
  const totalWeight = w.total_weight !== undefined ? wrapped(w.total_weight, 0) : sum;
  if (sum === 0) fail(at(ctx, 'clusters'), 'the sum of weights must be greater than 0');
  else if (totalWeight !== sum) fail(at(ctx, 'total_weight'), `total_weight ${totalWeight} does not equal the sum of weights ${sum}`);
  return { kind: 'weighted_clusters', clusters, totalWeight: sum };
}

function decodeDirectResponse(d: Pb, ctx: Ctx): RouteActionModel {
  const status = Number(d.status ?? 0);
  if (!(status >= 200 && status < 600)) fail(at(ctx, 'status'), `status ${status} must be in [200, 600)`);
  let body: string | null = null;
  const src = d.body as Pb | undefined;
  if (src) {
    if (src.inline_string !== undefined) body = String(src.inline_string);
    else if (src.inline_bytes !== undefined) body = Buffer.from(src.inline_bytes as Uint8Array).toString();
    else if (src.environment_variable !== undefined) body = process.env[String(src.environment_variable)] ?? '';
    else fail(at(ctx, 'body'), 'only inline_string, inline_bytes and environment_variable are supported');
  }
  return { kind: 'direct_response', status, body };
}

const REDIRECT_CODES: Record<string, number> = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 };

function decodeRedirect(r: Pb, ctx: Ctx): RouteActionModel {
  if (r.path_redirect !== undefined && r.prefix_rewrite !== undefined) fail(ctx, 'only one of path_redirect, prefix_rewrite may be set');
  return {
    kind: 'redirect',
    scheme: r.https_redirect ? 'https' : r.scheme_redirect ? String(r.scheme_redirect) : null,
    host: r.host_redirect ? String(r.host_redirect) : null,
    port: r.port_redirect ? Number(r.port_redirect) : null,
    path: r.path_redirect !== undefined ? String(r.path_redirect) : null,
    prefixRewrite: r.prefix_rewrite !== undefined ? String(r.prefix_rewrite) : null,
    responseCode: REDIRECT_CODES[String(r.response_code ?? 'MOVED_PERMANENTLY')] ?? 301,
    stripQuery: Boolean(r.strip_query),
  };
}

/** Envoy's RouteAction.HashPolicy; null for connection_properties without source_ip (Envoy adds nothing). */
function decodeHashPolicy(h: Pb, ctx: Ctx): HashPolicy | null {
  const terminal = Boolean(h.terminal);
  const named = (field: string, key: string): string => {
    const name = String((h[field] as Pb)[key] ?? '');
    if (!name) fail(at(at(ctx, field), key), `${key} is required`);
    return name;
  };
  if (h.header) return { kind: 'header', name: named('header', 'header_name').toLowerCase(), terminal };
  if (h.cookie) {
    // Envoy generates the cookie when ttl is set and it is missing; only existing cookies are hashed here.
    if ((h.cookie as Pb).ttl !== undefined) fail(at(at(ctx, 'cookie'), 'ttl'), 'generating the cookie (ttl) is not supported; hash an existing cookie (no ttl)');
    return { kind: 'cookie', name: named('cookie', 'name'), terminal };
  }
  if (h.connection_properties) return (h.connection_properties as Pb).source_ip ? { kind: 'source_ip', terminal } : null;
  if (h.query_parameter) return { kind: 'query_parameter', name: named('query_parameter', 'name'), terminal };
  fail(ctx, 'one of header, cookie, connection_properties or query_parameter is required');
  return null;
}

/** Envoy's RequestMirrorPolicy, with the checks Envoy makes in code rather than in the proto. */
export function decodeMirrorPolicy(p: Pb, ctx: Ctx): MirrorPolicy {
  const cluster = p.cluster ? String(p.cluster) : null;
  const clusterHeader = p.cluster_header ? String(p.cluster_header).toLowerCase() : null;
  if (cluster !== null && clusterHeader !== null) {
    fail(ctx, 'only one of cluster or cluster_header can be specified in a request mirror policy');
  } else if (cluster === null && clusterHeader === null) {
    fail(ctx, 'exactly one of cluster or cluster_header must be specified in a request mirror policy');
  }
  if (clusterHeader === 'host') {
    // Envoy's docs: name the authority pseudo-header, never Host.
    fail(at(ctx, 'cluster_header'), 'use ":authority" rather than "host"');
  }
  const hostRewriteLiteral = p.host_rewrite_literal ? String(p.host_rewrite_literal) : null;
  // There is no tracing to mark a shadow's trace as sampled in.
  if (p.trace_sampled !== undefined) fail(at(ctx, 'trace_sampled'), 'not supported by sidemirror (no tracing)');
  return {
    cluster,
    clusterHeader,
    runtimeFraction: runtimeFraction(p.runtime_fraction as Pb | undefined),
    traceSampled: p.trace_sampled === undefined ? null : wrapped(p.trace_sampled, true),
    // host_rewrite_literal implies no suffix: the operator said exactly what Host to send.
    disableShadowHostSuffixAppend: Boolean(p.disable_shadow_host_suffix_append) || hostRewriteLiteral !== null,
    requestHeadersMutations: each(ctx, p, 'request_headers_mutations', headerMutation),
    hostRewriteLiteral,
  };
}
