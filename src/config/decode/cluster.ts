import * as net from 'node:net';
import type { CircuitBreakerThresholds, Cluster, ClusterLoadAssignment, ClusterType, LbEndpoint, LbPolicy } from '../model';
import { type Ctx, type Pb, at, atKey, durationMs, each, fail, socketAddress, unpackAny, wrapped } from './common';
import { decodeMirrorPolicy } from './route';

const CLUSTER_TYPES = new Set<ClusterType>(['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS']);
const LB_POLICIES = new Set<LbPolicy>(['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM']);
const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export function decodeCluster(c: Pb, ctx: Ctx): Cluster {
  const name = String(c.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  const type = String(c.type ?? 'STATIC') as ClusterType;
  if (!CLUSTER_TYPES.has(type)) fail(at(ctx, 'type'), `cluster type ${type} is not supported (STATIC, STRICT_DNS, LOGICAL_DNS, EDS are)`);
  const lbPolicy = String(c.lb_policy ?? 'ROUND_ROBIN') as LbPolicy;
  if (!LB_POLICIES.has(lbPolicy)) fail(at(ctx, 'lb_policy'), `lb_policy ${lbPolicy} is not supported yet (ROUND_ROBIN, LEAST_REQUEST, RANDOM are)`);

  let loadAssignment: ClusterLoadAssignment | null = null;
  if (c.load_assignment) {
    loadAssignment = decodeClusterLoadAssignment(c.load_assignment as Pb, at(ctx, 'load_assignment'), type === 'STATIC');
    checkEndpointsForType(type, loadAssignment, at(ctx, 'load_assignment'));
  } else if (type !== 'EDS') {
    fail(at(ctx, 'load_assignment'), `load_assignment is required for a ${type} cluster`);
  }
  if (type === 'EDS' && !c.eds_cluster_config) fail(at(ctx, 'eds_cluster_config'), 'eds_cluster_config is required for an EDS cluster');

  const protocol = httpProtocolOptions(c, ctx);
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
    http2: protocol.http2 || c.http2_protocol_options !== undefined,
    maxRequestsPerConnection: wrapped(c.max_requests_per_connection, 0) || protocol.maxRequestsPerConnection,
    idleTimeoutMs: protocol.idleTimeoutMs,
    circuitBreakers: circuitBreakers(c.circuit_breakers as Pb | undefined),
    mirrorPolicies: protocol.mirrorPolicies,
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
      });
    });
  });
  return { clusterName: String(la.cluster_name ?? ''), endpoints };
}

interface ProtocolOptions {
  http2: boolean;
  idleTimeoutMs: number;
  maxRequestsPerConnection: number;
  mirrorPolicies: Cluster['mirrorPolicies'];
}

/** Reads `typed_extension_protocol_options`, where Envoy keeps HTTP/2 and cluster mirror policies. */
function httpProtocolOptions(c: Pb, ctx: Ctx): ProtocolOptions {
  const out: ProtocolOptions = { http2: false, idleTimeoutMs: 3_600_000, maxRequestsPerConnection: 0, mirrorPolicies: [] };
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
    const explicit = opts.explicit_http_config as Pb | undefined;
    out.http2 = Boolean(explicit?.http2_protocol_options);
    const common = opts.common_http_protocol_options as Pb | undefined;
    out.idleTimeoutMs = durationMs(common?.idle_timeout as Pb | undefined, out.idleTimeoutMs);
    out.maxRequestsPerConnection = wrapped(common?.max_requests_per_connection, 0);
    out.mirrorPolicies = each(kctx, opts, 'request_mirror_policies', decodeMirrorPolicy);
  }
  return out;
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
