import type {
  AllowedClusters,
  ExtMirrorPolicy,
  MirrorFilterConfig,
  MirrorLimit,
  MirrorSampling,
  MirrorTarget,
  RedisConnectionModel,
  RouteConfiguration,
} from '../model';
import { type Ctx, type Pb, at, atKey, durationMs, each, fail, fractionalPercent, headerMutation, runtimeFraction, wrapped } from './common';
import { decodeCompare } from './compare';
import { decodeRedisConnection } from './redis-connection';

// sidemirror.filters.http.mirror.v1: the filter's typed_config and MirrorPerRoute, into the model.

export const MIRROR_FILTER_TYPE = 'sidemirror.filters.http.mirror.v1.Mirror';
export const MIRROR_PER_ROUTE_TYPE = 'sidemirror.filters.http.mirror.v1.MirrorPerRoute';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function decodeMirrorFilter(m: Pb, ctx: Ctx): MirrorFilterConfig {
  const redis = new Map<string, RedisConnectionModel>();
  for (const [name, conn] of Object.entries((m.redis as Pb | undefined) ?? {})) {
    redis.set(name, decodeRedisConnection(conn as Pb, atKey(at(ctx, 'redis'), name)));
  }
  const inflight = m.max_inflight_per_cluster === undefined ? null : wrapped(m.max_inflight_per_cluster, 0);
  if (inflight === 0) fail(at(ctx, 'max_inflight_per_cluster'), 'must be greater than 0');
  return { redis, maxInflightPerCluster: inflight };
}

/**
 * The Redis connections that the mirror policies of a route configuration name (`limit.redis`,
 * `compare.fleet.redis`) must be in their filter's `redis` map: the proxy would otherwise leave
 * the whole policy out, no mirroring and no comparison. Checked where a listener's connection
 * manager carries its route configuration inline; one from RDS meets its filter only at run time,
 * where such a policy is left out with an error logged.
 */
export function checkRedisNames(rc: RouteConfiguration, filter: { readonly name: string; readonly config: MirrorFilterConfig }, ctx: Ctx): void {
  for (const vhost of rc.virtualHosts) {
    for (const owner of [vhost, ...vhost.routes]) {
      for (const p of owner.extMirrorPolicies.get(filter.name) ?? []) {
        for (const ref of [p.limit?.redis, p.compare?.fleet?.redis]) {
          if (ref?.kind !== 'named' || !ref.name || filter.config.redis.has(ref.name)) continue;
          const known = [...filter.config.redis.keys()].map((n) => `"${n}"`).join(', ') || 'none';
          ctx.issues.add(ref.path, `no Redis connection named "${ref.name}" in the redis map of mirror filter "${filter.name}" (it has ${known})`);
        }
      }
    }
  }
}

export function decodeMirrorPerRoute(m: Pb, ctx: Ctx): ExtMirrorPolicy[] {
  const policies = each(ctx, m, 'policies', decodeExtPolicy);
  const seen = new Set<string>();
  policies.forEach((p, i) => {
    if (seen.has(p.name)) fail(at(ctx, `policies[${i}].name`), `duplicate policy name "${p.name}"`);
    seen.add(p.name);
  });
  return policies;
}

function decodeExtPolicy(p: Pb, ctx: Ctx): ExtMirrorPolicy {
  // Unnamed policies are named by their place in the list (`policies[2]` → `policy2`).
  const name = String(p.name ?? '') || `policy${/\[(\d+)\]$/.exec(ctx.path)?.[1] ?? 0}`;
  const mode = p.mode === 'SYNC' ? 'sync' : 'async';
  if (p.sync_timeout !== undefined && mode !== 'sync') fail(at(ctx, 'sync_timeout'), 'only meaningful with mode: SYNC');
  const body = (p.body ?? {}) as Pb;
  const timeouts = (p.timeouts ?? {}) as Pb;
  const methods = ((p.methods as string[] | undefined) ?? []).map((s) => s.toUpperCase());
  methods.forEach((mth, i) => {
    if (!TOKEN.test(mth)) fail(at(ctx, `methods[${i}]`), `"${mth}" is not an HTTP method`);
  });
  const marker = p.marker_header ? String(p.marker_header).toLowerCase() : null;
  if (marker !== null && !TOKEN.test(marker)) fail(at(ctx, 'marker_header'), `"${marker}" is not a valid header name`);
  const hostRewriteLiteral = p.host_rewrite_literal ? String(p.host_rewrite_literal) : null;
  const target = decodeTarget(p, ctx);
  return {
    name,
    target,
    sampling: p.sampling ? decodeSampling(p.sampling as Pb, at(ctx, 'sampling')) : { kind: 'all' },
    limit: p.limit ? decodeLimit(p.limit as Pb, at(ctx, 'limit'), name) : null,
    mode,
    syncTimeoutMs: durationMs(p.sync_timeout as Pb | undefined, 1000),
    forwardBody: wrapped(body.forward, true),
    maxBodyBytes: Number(body.max_bytes ?? 0),
    timeouts: {
      connectMs: durationMs(timeouts.connect as Pb | undefined, 0),
      sendMs: durationMs(timeouts.send as Pb | undefined, 0),
      readMs: durationMs(timeouts.read as Pb | undefined, 0),
    },
    retry: p.retry ? decodeRetry(p.retry as Pb, at(ctx, 'retry')) : null,
    path: decodePath(p, ctx),
    requestHeadersMutations: each(ctx, p, 'request_headers_mutations', headerMutation),
    markerHeader: marker,
    methods: methods.length > 0 ? new Set(methods) : null,
    hooks: p.hooks ? decodeHooks(p.hooks as Pb, at(ctx, 'hooks')) : null,
    disableShadowHostSuffixAppend: Boolean(p.disable_shadow_host_suffix_append) || hostRewriteLiteral !== null,
    hostRewriteLiteral,
    compare: p.compare ? decodeCompare(p.compare as Pb, at(ctx, 'compare'), target.kind === 'cluster' ? target.name : null) : null,
  };
}

function decodeTarget(p: Pb, ctx: Ctx): MirrorTarget {
  if (p.allowed_clusters && !p.cluster_header) fail(at(ctx, 'allowed_clusters'), 'only meaningful with a cluster_header target');
  if (p.cluster) return { kind: 'cluster', name: String(p.cluster) };
  if (p.cluster_header) {
    const header = String(p.cluster_header).toLowerCase();
    if (header === 'host') fail(at(ctx, 'cluster_header'), 'use ":authority" rather than "host"');
    return { kind: 'cluster_header', header, allowed: decodeAllowedClusters(p.allowed_clusters as Pb | undefined, at(ctx, 'allowed_clusters')) };
  }
  if (p.host) return decodeHostTarget(String(p.host), at(ctx, 'host'));
  fail(ctx, 'one of cluster, cluster_header or host is required');
  return { kind: 'cluster', name: '' };
}

/** Any client can set a header, so a header-named target must say which clusters it may reach. */
function decodeAllowedClusters(a: Pb | undefined, ctx: Ctx): AllowedClusters {
  const names = ((a?.names as string[] | undefined) ?? []).map(String);
  const prefixes = ((a?.prefixes as string[] | undefined) ?? []).map(String);
  if (names.length === 0 && prefixes.length === 0) {
    fail(ctx, 'a cluster_header target needs allowed_clusters (names and/or prefixes): without it any client could pick any cluster');
  }
  names.forEach((n, i) => {
    if (!n) fail(at(ctx, `names[${i}]`), 'must not be empty');
  });
  prefixes.forEach((n, i) => {
    if (!n) fail(at(ctx, `prefixes[${i}]`), 'must not be empty (that would allow every cluster)');
  });
  return { names: new Set(names), prefixes };
}

function decodeHostTarget(raw: string, ctx: Ctx): MirrorTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail(ctx, `"${raw}" is not a URL like http://127.0.0.1:9797`);
    return { kind: 'host', url: raw, host: '', port: 0 };
  }
  if (url.protocol !== 'http:') fail(ctx, `only http:// mirror hosts are supported, not ${url.protocol}`);
  if (url.pathname !== '/' || url.search || url.username) fail(ctx, 'give only scheme, host and port (use `path` for the path)');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { kind: 'host', url: `${url.protocol}//${url.host}`, host, port: Number(url.port || 80) };
}

function decodeSampling(s: Pb, ctx: Ctx): MirrorSampling {
  if (s.random) return { kind: 'random', fraction: runtimeFraction(s.random as Pb)! };
  if (s.every_nth !== undefined) {
    const n = Number(s.every_nth);
    if (n < 1) fail(at(ctx, 'every_nth'), 'must be at least 1');
    return { kind: 'every_nth', n: Math.max(1, n) };
  }
  if (s.consistent) {
    const c = s.consistent as Pb;
    const cctx = at(ctx, 'consistent');
    if (!c.fraction) fail(at(cctx, 'fraction'), 'fraction is required');
    let key: Extract<MirrorSampling, { kind: 'consistent' }>['key'] = { kind: 'source_ip' };
    if (c.header) key = { kind: 'header', name: String(c.header).toLowerCase() };
    else if (c.cookie) key = { kind: 'cookie', name: String(c.cookie) };
    else if (!c.source_ip) fail(cctx, 'one of header, cookie or source_ip is required');
    return { kind: 'consistent', fraction: fractionalPercent(c.fraction as Pb | undefined), key };
  }
  fail(ctx, 'one of random, every_nth or consistent is required');
  return { kind: 'all' };
}

function decodeLimit(l: Pb, ctx: Ctx, policyName: string): MirrorLimit {
  const count = Number(l.count ?? 0);
  if (count < 1) fail(at(ctx, 'count'), 'must be at least 1');
  const windowMs = durationMs(l.time_window as Pb | undefined, 0);
  if (windowMs <= 0) fail(at(ctx, 'time_window'), 'a positive time_window is required');
  const policy = String(l.policy ?? 'LOCAL');
  let redis: MirrorLimit['redis'] = null;
  if (policy !== 'LOCAL') {
    if (l.redis && l.redis_connection) fail(ctx, 'only one of redis, redis_connection may be set');
    if (l.redis) redis = { kind: 'named', name: String(l.redis), path: at(ctx, 'redis').path };
    else if (l.redis_connection) redis = decodeRedisConnection(l.redis_connection as Pb, at(ctx, 'redis_connection'));
    else fail(ctx, `policy ${policy} needs redis (a connection named in the filter config) or redis_connection`);
    const wantCluster = policy === 'REDIS_CLUSTER';
    if (redis && redis.kind !== 'named' && (redis.kind === 'cluster') !== wantCluster) {
      fail(at(ctx, 'redis_connection'), wantCluster ? 'REDIS_CLUSTER needs a cluster connection' : 'REDIS needs a server connection');
    }
  } else if (l.redis || l.redis_connection) {
    fail(at(ctx, 'policy'), 'a Redis connection is given but the policy is LOCAL');
  }
  return {
    count,
    windowMs,
    store: policy === 'LOCAL' ? 'local' : 'redis',
    redis,
    onRedisError: l.on_redis_error === 'ALLOW' ? 'allow' : 'skip',
    key: String(l.key ?? '') || policyName,
  };
}

function decodeRetry(r: Pb, ctx: Ctx): ExtMirrorPolicy['retry'] {
  const count = Number(r.count ?? 0);
  const conditions = { onConnectFailure: Boolean(r.on_connect_failure), onReset: Boolean(r.on_reset), on5xx: Boolean(r.on_5xx) };
  if (count > 0 && !conditions.onConnectFailure && !conditions.onReset && !conditions.on5xx) {
    fail(ctx, 'name at least one of on_connect_failure, on_reset, on_5xx');
  }
  if (count > 10) fail(at(ctx, 'count'), 'at most 10 retries');
  return count > 0 ? { count, ...conditions } : null;
}

function decodePath(p: Pb, ctx: Ctx): ExtMirrorPolicy['path'] {
  if (!p.path) {
    if (p.path_concat_mode === 'PREFIX') fail(at(ctx, 'path_concat_mode'), 'PREFIX needs a path');
    return null;
  }
  const value = String(p.path);
  if (!value.startsWith('/') || /[?#]/.test(value)) fail(at(ctx, 'path'), 'must start with "/" and hold no query or fragment');
  return { value, mode: p.path_concat_mode === 'PREFIX' ? 'prefix' : 'replace' };
}

function decodeHooks(h: Pb, ctx: Ctx): ExtMirrorPolicy['hooks'] {
  const module = String(h.module ?? '');
  if (!module) fail(at(ctx, 'module'), 'module is required');
  return {
    module,
    timeoutMs: durationMs(h.timeout as Pb | undefined, 50),
    maxResponseBodyBytes: wrapped(h.max_response_body_bytes, 64 * 1024),
    path: ctx.path,
  };
}
