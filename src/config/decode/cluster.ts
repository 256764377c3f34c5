import * as net from 'node:net';
import type {
  CircuitBreakerThresholds,
  Cluster,
  ClusterLoadAssignment,
  ClusterType,
  HealthCheckConfig,
  LbEndpoint,
  LbPolicy,
  RingHashConfig,
} from '../model';
import { type Ctx, type Pb, adsConfigSource, at, atIndex, atKey, durationMs, each, fail, headerToAdd, refuse, socketAddress, unpackAny, wrapped } from './common';
import type { Http2Settings, TransportSocketMatch, UpstreamProtocol, UpstreamTlsContext } from '../transport-model';
import { http2Settings } from './http2';
import { decodeHealthyPanicThreshold, decodeOutlierDetection } from './outlier-detection';
import { decodeMirrorPolicy } from './route';
import { decodeTransportSocketMatch, endpointTransportSocketMatch, upstreamTransportSocket } from './transport-socket';

const CLUSTER_TYPES = new Set<ClusterType>(['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS']);
const LB_POLICIES = new Set<LbPolicy>(['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH']);
const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const HTTP1_OPTIONS = ['allow_absolute_url', 'accept_http_10', 'default_host_for_http_10', 'enable_trailers'];

export function decodeCluster(c: Pb, ctx: Ctx): Cluster {
  const name = String(c.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  const type = String(c.type ?? 'STATIC') as ClusterType;
  if (!CLUSTER_TYPES.has(type)) fail(at(ctx, 'type'), `cluster type ${type} is not supported (STATIC, STRICT_DNS, LOGICAL_DNS, EDS are)`);
  const lbPolicy = String(c.lb_policy ?? 'ROUND_ROBIN') as LbPolicy;
  if (!LB_POLICIES.has(lbPolicy)) fail(at(ctx, 'lb_policy'), `lb_policy ${lbPolicy} is not supported yet (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH are)`);

  let loadAssignment: ClusterLoadAssignment | null = null;
  if (c.load_assignment) {
    loadAssignment = decodeClusterLoadAssignment(c.load_assignment as Pb, at(ctx, 'load_assignment'), type === 'STATIC');
    checkEndpointsForType(type, loadAssignment, at(ctx, 'load_assignment'));
  } else if (type !== 'EDS') {
    fail(at(ctx, 'load_assignment'), `load_assignment is required for a ${type} cluster`);
  }
  if (type === 'EDS' && !c.eds_cluster_config) fail(at(ctx, 'eds_cluster_config'), 'eds_cluster_config is required for an EDS cluster');

  refuse(c, ctx, ['per_connection_buffer_limit_bytes', 'alt_stat_name', 'close_connections_on_host_health_failure', 'ignore_health_on_host_removal', 'respect_dns_ttl']);
  adsConfigSource((c.eds_cluster_config as Pb | undefined)?.eds_config as Pb | undefined, at(at(ctx, 'eds_cluster_config'), 'eds_config'));
  const protocol = httpProtocolOptions(c, ctx);
  const tls = upstreamTransportSocket(c.transport_socket as Pb | undefined, at(ctx, 'transport_socket'));
  const transportSocketMatches = each(ctx, c, 'transport_socket_matches', decodeTransportSocketMatch);
  if (protocol.protocol?.kind === 'auto') checkAlpnSockets(name, tls, transportSocketMatches, c, ctx, protocol.autoPath);
  return {
    name,
    type,
    connectTimeoutMs: durationMs(c.connect_timeout as Pb | undefined, 5000),
    lbPolicy,
    leastRequestChoiceCount: wrapped((c.least_request_lb_config as Pb | undefined)?.choice_count, 2),
    loadAssignment,
    edsServiceName: (c.eds_cluster_config as Pb | undefined)?.service_name ? String((c.eds_cluster_config as Pb).service_name) : null,
    dnsRefreshRateMs: durationMs(c.dns_refresh_rate as Pb | undefined, 5000),
    dnsLookupFamily: String(c.dns_lookup_family ?? 'AUTO') as Cluster['dnsLookupFamily'],
    // The legacy cluster field still selects HTTP/2 (Envoy's own SDS examples use it).
    protocol: protocol.protocol ?? (c.http2_protocol_options ? { kind: 'http2', http2: http2Settings(c.http2_protocol_options as Pb, at(ctx, 'http2_protocol_options')) } : { kind: 'http1' }),
    tls,
    transportSocketMatches,
    maxRequestsPerConnection: wrapped(c.max_requests_per_connection, 0) || protocol.maxRequestsPerConnection,
    idleTimeoutMs: protocol.idleTimeoutMs,
    circuitBreakers: circuitBreakers(c.circuit_breakers as Pb | undefined),
    mirrorPolicies: protocol.mirrorPolicies,
    ringHash: lbPolicy === 'RING_HASH' ? ringHashConfig(c.ring_hash_lb_config as Pb | undefined, at(ctx, 'ring_hash_lb_config')) : null,
    healthCheck: healthChecks(c, ctx),
    outlierDetection: decodeOutlierDetection(c.outlier_detection as Pb | undefined, at(ctx, 'outlier_detection')),
    healthyPanicThreshold: decodeHealthyPanicThreshold(c.common_lb_config as Pb | undefined, at(ctx, 'common_lb_config')),
  };
}

/** Envoy's bounds for both ring sizes (the proto's PGV rule). */
const MAX_RING_SIZE = 8 * 1024 * 1024;

function ringHashConfig(r: Pb | undefined, ctx: Ctx): RingHashConfig {
  const minimumRingSize = wrapped(r?.minimum_ring_size, 1024);
  const maximumRingSize = wrapped(r?.maximum_ring_size, MAX_RING_SIZE);
  if (minimumRingSize > MAX_RING_SIZE) fail(at(ctx, 'minimum_ring_size'), `must be at most ${MAX_RING_SIZE}`);
  if (maximumRingSize > MAX_RING_SIZE) fail(at(ctx, 'maximum_ring_size'), `must be at most ${MAX_RING_SIZE}`);
  if (minimumRingSize > maximumRingSize) fail(ctx, `ring hash: minimum_ring_size (${minimumRingSize}) > maximum_ring_size (${maximumRingSize})`);
  const hashFunction = String(r?.hash_function ?? 'XX_HASH') as RingHashConfig['hashFunction'];
  return { minimumRingSize: Math.max(minimumRingSize, 1), maximumRingSize, hashFunction };
}

const UNSUPPORTED_CHECKERS = ['tcp_health_check', 'grpc_health_check', 'custom_health_check'] as const;
/** What Envoy accepts in a header value: no CR, LF or NUL. */
const HEADER_VALUE = /^[^\r\n\0]*$/;

/** `health_checks`: at most one, an http_health_check, with Envoy's required fields. */
function healthChecks(c: Pb, ctx: Ctx): HealthCheckConfig | null {
  const list = (c.health_checks as Pb[] | undefined) ?? [];
  if (list.length === 0) return null;
  for (let i = 1; i < list.length; i++) fail(atIndex(ctx, 'health_checks', i), 'only one health check per cluster is supported');
  return decodeHealthCheck(list[0]!, atIndex(ctx, 'health_checks', 0));
}

function positiveDuration(hc: Pb, field: string, ctx: Ctx, required: boolean, fallback: number): number {
  const d = hc[field] as Pb | undefined;
  if (d === undefined) {
    if (required) fail(at(ctx, field), `${field} is required`);
    return fallback;
  }
  const ms = durationMs(d, fallback);
  if (!(ms > 0)) fail(at(ctx, field), `${field} must be greater than 0s`);
  return ms;
}

function threshold(hc: Pb, field: string, ctx: Ctx): number {
  if (hc[field] === undefined || hc[field] === null) {
    fail(at(ctx, field), `${field} is required`);
    return 1;
  }
  return wrapped(hc[field], 0);
}

export function decodeHealthCheck(hc: Pb, ctx: Ctx): HealthCheckConfig {
  const timeoutMs = positiveDuration(hc, 'timeout', ctx, true, 1000);
  const intervalMs = positiveDuration(hc, 'interval', ctx, true, 1000);
  const noTrafficIntervalMs = positiveDuration(hc, 'no_traffic_interval', ctx, false, 60_000);
  const intervalJitterMs = durationMs(hc.interval_jitter as Pb | undefined, 0);
  if (intervalJitterMs < 0) fail(at(ctx, 'interval_jitter'), 'interval_jitter must not be negative');
  const unhealthyThreshold = threshold(hc, 'unhealthy_threshold', ctx);
  const healthyThreshold = threshold(hc, 'healthy_threshold', ctx);

  for (const kind of UNSUPPORTED_CHECKERS) {
    if (hc[kind] !== undefined) fail(at(ctx, kind), `${kind} is not supported (only http_health_check is)`);
  }
  const http = hc.http_health_check as Pb | undefined;
  if (!http) {
    if (!UNSUPPORTED_CHECKERS.some((k) => hc[k] !== undefined)) fail(ctx, 'one of http_health_check, tcp_health_check, grpc_health_check or custom_health_check is required');
    return { timeoutMs, intervalMs, intervalJitterMs, noTrafficIntervalMs, unhealthyThreshold, healthyThreshold, http: { host: '', path: '/', expectedStatuses: [[200, 201]], requestHeadersToAdd: [], requestHeadersToRemove: [] } };
  }
  const hctx = at(ctx, 'http_health_check');
  const host = String(http.host ?? '');
  if (!HEADER_VALUE.test(host)) fail(at(hctx, 'host'), 'host must be a valid header value');
  const path = String(http.path ?? '');
  if (!path) fail(at(hctx, 'path'), 'path is required');
  else if (!HEADER_VALUE.test(path)) fail(at(hctx, 'path'), 'path must be a valid header value');
  const expectedStatuses = each(hctx, http, 'expected_statuses', (r, rctx): [number, number] => {
    // Envoy's HttpStatusChecker checks, with its messages.
    const start = Number(r.start ?? 0);
    const end = Number(r.end ?? 0);
    if (start >= end) fail(rctx, `Invalid http expected status range: expecting start < end, but found start=${start} and end=${end}`);
    else if (start < 100) fail(rctx, `Invalid http expected status range: expecting start >= 100, but found start=${start}`);
    else if (end > 600) fail(rctx, `Invalid http expected status range: expecting end <= 600, but found end=${end}`);
    return [start, end];
  });
  const requestHeadersToRemove = ((http.request_headers_to_remove as string[] | undefined) ?? []).map((n) => String(n).toLowerCase());
  return {
    timeoutMs,
    intervalMs,
    intervalJitterMs,
    noTrafficIntervalMs,
    unhealthyThreshold,
    healthyThreshold,
    http: {
      host,
      path,
      expectedStatuses: expectedStatuses.length > 0 ? expectedStatuses : [[200, 201]],
      requestHeadersToAdd: each(hctx, http, 'request_headers_to_add', headerToAdd),
      requestHeadersToRemove,
    },
  };
}

function checkEndpointsForType(type: ClusterType, la: ClusterLoadAssignment, ctx: Ctx): void {
  if (type === 'LOGICAL_DNS' && la.endpoints.length !== 1) {
    fail(ctx, 'a LOGICAL_DNS cluster must have exactly one endpoint');
  }
}

/** `requireIp`: a STATIC cluster cannot resolve names, so each address must be an IP literal. */
export function decodeClusterLoadAssignment(la: Pb, ctx: Ctx, requireIp = false): ClusterLoadAssignment {
  const endpoints: LbEndpoint[] = [];
  each(ctx, la, 'endpoints', (locality, lctx) => {
    const priority = Number(locality.priority ?? 0);
    each(lctx, locality, 'lb_endpoints', (lb, ectx) => {
      const ep = (lb.endpoint ?? {}) as Pb;
      if (!lb.endpoint) {
        fail(at(ectx, 'endpoint'), 'endpoint is required');
        return;
      }
      refuse(ep, at(ectx, 'endpoint'), ['health_check_config']);
      const actx = at(at(ectx, 'endpoint'), 'address');
      const address = socketAddress(ep.address as Pb | undefined, actx);
      if (requireIp && address.host && net.isIP(address.host) === 0) {
        fail(at(at(actx, 'socket_address'), 'address'), `"${address.host}" is not an IP address; a STATIC cluster needs IPs (STRICT_DNS resolves names)`);
      }
      endpoints.push({
        address,
        hostname: String(ep.hostname ?? ''),
        weight: wrapped(lb.load_balancing_weight, 1),
        priority,
        healthStatus: String(lb.health_status ?? 'UNKNOWN'),
        transportSocketMatch: endpointTransportSocketMatch(lb.metadata as Pb | undefined, ectx),
      });
    });
  });
  refuse(la, ctx, ['policy']);
  return { clusterName: String(la.cluster_name ?? ''), endpoints };
}

/**
 * auto_config picks HTTP/2 or HTTP/1.1 by ALPN, so every socket the cluster can use must be TLS
 * (Envoy: "ALPN configured for cluster … which has a non-ALPN transport socket").
 */
function checkAlpnSockets(name: string, tls: UpstreamTlsContext | null, matches: readonly TransportSocketMatch[], c: Pb, ctx: Ctx, autoPath: Ctx | null): void {
  const why = `ALPN (auto_config) configured for cluster "${name}"`;
  if (tls === null) fail(c.transport_socket ? at(ctx, 'transport_socket') : (autoPath ?? ctx), `${why} which has a non-ALPN transport socket (auto_config needs envoy.transport_sockets.tls)`);
  matches.forEach((m, i) => {
    if (m.tls === null) fail(at(atIndex(ctx, 'transport_socket_matches', i), 'transport_socket'), `${why} which has a non-ALPN transport socket in transport_socket_matches "${m.name}"`);
  });
}

interface ProtocolOptions {
  protocol: UpstreamProtocol | null;
  /** Where auto_config was set, for the ALPN check's message. */
  autoPath: Ctx | null;
  idleTimeoutMs: number;
  maxRequestsPerConnection: number;
  mirrorPolicies: Cluster['mirrorPolicies'];
}

/** Reads `typed_extension_protocol_options`, where Envoy keeps HTTP/2 and cluster mirror policies. */
function httpProtocolOptions(c: Pb, ctx: Ctx): ProtocolOptions {
  const out: ProtocolOptions = { protocol: null, autoPath: null, idleTimeoutMs: 3_600_000, maxRequestsPerConnection: 0, mirrorPolicies: [] };
  const map = c.typed_extension_protocol_options as Pb | undefined;
  if (!map) return out;
  const mctx = at(ctx, 'typed_extension_protocol_options');
  for (const [key, any] of Object.entries(map)) {
    const kctx = atKey(mctx, key);
    const cfg = unpackAny(any as Pb, kctx);
    if (!cfg) continue;
    if (!cfg.typeUrl.endsWith(HTTP_PROTOCOL_OPTIONS)) {
      fail(kctx, `unsupported protocol options type "${cfg.typeUrl}"`);
      continue;
    }
    const opts = cfg.value as Pb;
    refuse(opts.common_http_protocol_options as Pb | undefined, at(kctx, 'common_http_protocol_options'), ['max_headers_count', 'max_connection_duration', 'max_stream_duration']);
    const explicit = opts.explicit_http_config as Pb | undefined;
    const ectx = at(kctx, 'explicit_http_config');
    refuse(explicit?.http_protocol_options as Pb | undefined, at(ectx, 'http_protocol_options'), HTTP1_OPTIONS);
    if (explicit?.http2_protocol_options) out.protocol = { kind: 'http2', http2: http2Settings(explicit.http2_protocol_options as Pb, at(ectx, 'http2_protocol_options')) };
    else if (explicit) out.protocol = { kind: 'http1' };
    for (const [field, kind] of [['use_downstream_protocol_config', 'downstream'], ['auto_config', 'auto']] as const) {
      const chosen = opts[field] as Pb | undefined;
      if (!chosen) continue;
      const fctx = at(kctx, field);
      out.protocol = { kind, http2: bothVersions(chosen, fctx) };
      if (kind === 'auto') out.autoPath = fctx;
    }
    const common = opts.common_http_protocol_options as Pb | undefined;
    out.idleTimeoutMs = durationMs(common?.idle_timeout as Pb | undefined, out.idleTimeoutMs);
    out.maxRequestsPerConnection = wrapped(common?.max_requests_per_connection, 0);
    out.mirrorPolicies = each(kctx, opts, 'request_mirror_policies', decodeMirrorPolicy);
  }
  return out;
}

/** The HTTP/1.1 and HTTP/2 options of use_downstream_protocol_config and auto_config. */
function bothVersions(o: Pb, ctx: Ctx): Http2Settings {
  refuse(o.http_protocol_options as Pb | undefined, at(ctx, 'http_protocol_options'), HTTP1_OPTIONS);
  return http2Settings(o.http2_protocol_options as Pb | undefined, at(ctx, 'http2_protocol_options'));
}

function circuitBreakers(cb: Pb | undefined): CircuitBreakerThresholds {
  const t = ((cb?.thresholds as Pb[] | undefined) ?? []).find((x) => (x.priority ?? 'DEFAULT') === 'DEFAULT');
  return {
    maxConnections: wrapped(t?.max_connections, 1024),
    maxPendingRequests: wrapped(t?.max_pending_requests, 1024),
    maxRequests: wrapped(t?.max_requests, 1024),
    maxRetries: wrapped(t?.max_retries, 3),
  };
}
