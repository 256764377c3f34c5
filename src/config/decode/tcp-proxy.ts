import type { TcpClusterSpecifier, TcpClusterWeight, TcpProxyConfig } from '../tcp-proxy-model';
import { type Ctx, type Pb, at, durationMs, each, fail, wrapped } from './common';

export const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** Envoy's idle_timeout when none is set: one hour. */
const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;

/**
 * TcpProxy as sidemirror runs it. Fields our proto does not declare (tunneling_config,
 * on_demand, metadata_match, the access log options…) are refused by name before this runs.
 */
export function decodeTcpProxy(t: Pb, ctx: Ctx): TcpProxyConfig {
  const statPrefix = String(t.stat_prefix ?? '');
  if (!statPrefix) fail(at(ctx, 'stat_prefix'), 'stat_prefix is required');
  // Access logs are built elsewhere; until they are wired to connections, saying so beats running without them.
  if (Array.isArray(t.access_log) && t.access_log.length > 0) fail(at(ctx, 'access_log'), 'TCP proxy access logs are not supported yet');
  const attempts = Number(wrapped(t.max_connect_attempts as Pb | undefined, 1));
  if (!Number.isInteger(attempts) || attempts < 1) fail(at(ctx, 'max_connect_attempts'), 'must be at least 1');
  const maxDuration = durationMs(t.max_downstream_connection_duration as Pb | undefined, 0);
  if (t.max_downstream_connection_duration && maxDuration < 1) fail(at(ctx, 'max_downstream_connection_duration'), 'must be at least 1ms');
  return {
    statPrefix,
    cluster: clusterSpecifier(t, ctx),
    idleTimeoutMs: durationMs(t.idle_timeout as Pb | undefined, DEFAULT_IDLE_TIMEOUT_MS),
    maxConnectAttempts: Math.max(1, Number.isInteger(attempts) ? attempts : 1),
    hashSourceIp: hashPolicy(t, ctx),
    maxDownstreamConnectionDurationMs: Math.max(0, maxDuration),
  };
}

function clusterSpecifier(t: Pb, ctx: Ctx): TcpClusterSpecifier {
  if (t.weighted_clusters) {
    const wctx = at(ctx, 'weighted_clusters');
    const clusters = each(wctx, t.weighted_clusters as Pb, 'clusters', clusterWeight);
    if (clusters.length === 0) fail(at(wctx, 'clusters'), 'at least one cluster is required');
    const totalWeight = clusters.reduce((sum, c) => sum + c.weight, 0);
    return { kind: 'weighted_clusters', clusters, totalWeight: Math.max(1, totalWeight) };
  }
  const name = String(t.cluster ?? '');
  if (!name) fail(ctx, 'one of cluster or weighted_clusters is required');
  return { kind: 'cluster', name };
}

function clusterWeight(c: Pb, ctx: Ctx): TcpClusterWeight {
  const name = String(c.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  const weight = Number(c.weight ?? 0);
  if (!Number.isInteger(weight) || weight < 1) fail(at(ctx, 'weight'), 'must be at least 1');
  return { name, weight: Math.max(1, weight) };
}

/** At most one policy (Envoy's rule); source_ip is the only kind our proto declares. */
function hashPolicy(t: Pb, ctx: Ctx): boolean {
  const policies = (t.hash_policy as Pb[] | undefined) ?? [];
  if (policies.length > 1) fail(at(ctx, 'hash_policy'), 'at most one hash policy is allowed');
  policies.forEach((p, i) => {
    if (!p.source_ip) fail(at(ctx, `hash_policy[${i}]`), 'a policy (source_ip) is required');
  });
  return policies.some((p) => Boolean(p.source_ip));
}
