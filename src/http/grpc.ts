import type { MaxStreamDuration } from '../config/model';
import type { HeaderMap } from './headers';

// gRPC as the connection manager and router see it (Envoy's Grpc::Common and Grpc::Utility):
// what a gRPC request is, how a local reply becomes a gRPC error, and the grpc-timeout header.

/** gRPC status codes the proxy itself answers with. */
export const GRPC_STATUS = { OK: 0, UNKNOWN: 2, DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, INTERNAL: 13, UNAVAILABLE: 14, UNIMPLEMENTED: 12, UNAUTHENTICATED: 16 } as const;

/** A gRPC request: content-type application/grpc, alone or with a `+suffix` or `;params`. */
export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  const v = Array.isArray(contentType) ? contentType[0] : contentType;
  if (v === undefined || v.length < 16) return false;
  if (v.slice(0, 16).toLowerCase() !== 'application/grpc') return false;
  if (v.length === 16) return true;
  const next = v.charCodeAt(16);
  return next === 43 /* '+' */ || next === 59 /* ';' */;
}

/** Envoy's Grpc::Utility::httpToGrpcStatus, for local replies to gRPC requests. */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/**
 * The headers of a local reply to a gRPC request, as Envoy sends it: HTTP 200, Trailers-Only
 * (one HEADERS frame that ends the stream), grpc-status from the HTTP status unless given,
 * grpc-message the reply's text, percent-encoded as gRPC requires.
 */
export function grpcLocalReplyHeaders(status: number, body: string, grpcStatus?: number): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/grpc',
    'grpc-status': String(grpcStatus ?? httpToGrpcStatus(status)),
  };
  if (body) headers['grpc-message'] = encodeGrpcMessage(body);
  return headers;
}

/** gRPC's percent-encoding of grpc-message: printable ASCII but '%' as is, the rest %XX of UTF-8. */
function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const GRPC_TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * The grpc-timeout header in ms (PROTOCOL-HTTP2.md: at most 8 digits and a unit), null when
 * absent or malformed. Sub-millisecond values round up, so that a deadline never becomes 0 (none).
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^[0-9]{1,8}[HMSmun]$/.test(v)) return null;
  const ms = Number(v.slice(0, -1)) * GRPC_TIMEOUT_UNITS[v.slice(-1)]!;
  return ms > 0 ? Math.max(1, Math.ceil(ms)) : 0;
}

/**
 * The route timeout under the deprecated max_grpc_timeout (Envoy's FilterUtility::finalTimeout):
 * the grpc-timeout header's value, less the offset when larger than it, capped by the maximum
 * (0: no cap); no header means the maximum, and with no maximum no timeout at all. Null when the
 * route does not read the header this way.
 */
export function legacyGrpcRouteTimeout(headers: HeaderMap, rule: MaxStreamDuration): number | null {
  if (!rule.legacy || rule.grpcTimeoutHeaderMaxMs === null) return null;
  let timeout = parseGrpcTimeout(headers['grpc-timeout']) ?? 0;
  if (rule.grpcTimeoutHeaderOffsetMs > 0 && timeout > rule.grpcTimeoutHeaderOffsetMs) timeout -= rule.grpcTimeoutHeaderOffsetMs;
  const max = rule.grpcTimeoutHeaderMaxMs;
  if (max !== 0 && (timeout === 0 || timeout > max)) timeout = max;
  return timeout;
}

/**
 * The stream's own bound under max_stream_duration (Envoy's HCM stream timer), in ms from the
 * start of the request (0: none): a gRPC request's grpc-timeout when the route reads it, capped
 * (0: no cap) and less the offset — at most that leaves nothing, and the stream ends at once —,
 * else max_stream_duration.
 */
export function streamDurationMs(headers: HeaderMap, rule: MaxStreamDuration, grpc: boolean): number {
  if (rule.legacy) return 0;
  const header = grpc && rule.grpcTimeoutHeaderMaxMs !== null ? parseGrpcTimeout(headers['grpc-timeout']) : null;
  if (header === null || header === 0) return rule.maxStreamDurationMs;
  let t = header;
  if (rule.grpcTimeoutHeaderMaxMs! > 0 && t > rule.grpcTimeoutHeaderMaxMs!) t = rule.grpcTimeoutHeaderMaxMs!;
  t -= rule.grpcTimeoutHeaderOffsetMs;
  return Math.max(t, 1);
}
