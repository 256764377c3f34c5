import type { DownstreamTlsContext, TransportSocketMatch, UpstreamTlsContext } from '../transport-model';
import { type Ctx, type Pb, at, atKey, fail, typeUrlName, unpackAny } from './common';
import { DOWNSTREAM_TLS_TYPE, UPSTREAM_TLS_TYPE, decodeDownstreamTlsContext, decodeUpstreamTlsContext } from './tls';

// core.v3.TransportSocket on filter chains and clusters: TLS (envoy.transport_sockets.tls) or
// plaintext (envoy.transport_sockets.raw_buffer); and a cluster's transport_socket_matches.
// As in Envoy, a typed_config picks the socket by its type; without one, the name does.

const TLS_NAME = 'envoy.transport_sockets.tls';
const RAW_BUFFER_NAME = 'envoy.transport_sockets.raw_buffer';
const RAW_BUFFER_TYPE = 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

/** The metadata key Envoy matches transport_socket_matches against. */
export const TRANSPORT_SOCKET_MATCH_KEY = 'envoy.transport_socket_match';

type Kind = 'tls' | 'raw_buffer' | null;

function socketKind(ts: Pb, ctx: Ctx, tlsType: string): { kind: Kind; config: Pb } {
  const name = String(ts.name ?? '');
  if (ts.typed_config) {
    const cfg = unpackAny(ts.typed_config as Pb, at(ctx, 'typed_config'));
    if (!cfg) return { kind: null, config: {} };
    const type = typeUrlName(cfg.typeUrl);
    if (type === tlsType) return { kind: 'tls', config: cfg.value as Pb };
    if (type === RAW_BUFFER_TYPE) return { kind: 'raw_buffer', config: {} };
    const other = type === DOWNSTREAM_TLS_TYPE || type === UPSTREAM_TLS_TYPE ? ` here (${tlsType} is)` : '';
    fail(at(ctx, 'typed_config'), `transport socket type "${cfg.typeUrl}" is not supported${other}`);
    return { kind: null, config: {} };
  }
  if (name === TLS_NAME) return { kind: 'tls', config: {} };
  if (name === RAW_BUFFER_NAME) return { kind: 'raw_buffer', config: {} };
  if (!name) fail(at(ctx, 'name'), 'name is required');
  else fail(at(ctx, 'name'), `transport socket "${name}" is not supported by sidemirror (${TLS_NAME} and ${RAW_BUFFER_NAME} are)`);
  return { kind: null, config: {} };
}

/** A filter chain's transport_socket: its TLS context, or null for plaintext (absent or raw_buffer). */
export function downstreamTransportSocket(ts: Pb | undefined, ctx: Ctx): DownstreamTlsContext | null {
  if (!ts) return null;
  const { kind, config } = socketKind(ts, ctx, DOWNSTREAM_TLS_TYPE);
  return kind === 'tls' ? decodeDownstreamTlsContext(config, at(ctx, 'typed_config')) : null;
}

/** A cluster's transport_socket (or a match's): its TLS context, or null for plaintext. */
export function upstreamTransportSocket(ts: Pb | undefined, ctx: Ctx): UpstreamTlsContext | null {
  if (!ts) return null;
  const { kind, config } = socketKind(ts, ctx, UPSTREAM_TLS_TYPE);
  return kind === 'tls' ? decodeUpstreamTlsContext(config, at(ctx, 'typed_config')) : null;
}

export function decodeTransportSocketMatch(m: Pb, ctx: Ctx): TransportSocketMatch {
  const name = String(m.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  if (!m.transport_socket) fail(at(ctx, 'transport_socket'), 'transport_socket is required');
  return {
    name,
    match: stringStruct(m.match as Pb | undefined, at(ctx, 'match')),
    tls: upstreamTransportSocket(m.transport_socket as Pb | undefined, at(ctx, 'transport_socket')),
  };
}

// protobufjs declares google.protobuf.Struct/Value with camelCase field names even under keepCase.
const valueField = (v: Pb, snake: string, camel: string): unknown => v[camel] ?? v[snake];

/**
 * A Struct of string values (transport socket match criteria and endpoint metadata). Envoy
 * compares values with their types; sidemirror keeps strings only and refuses the rest rather
 * than let `true` and "true" match each other.
 */
export function stringStruct(s: Pb | undefined, ctx: Ctx): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const [key, raw] of Object.entries((s?.fields ?? {}) as Pb)) {
    const str = valueField(raw as Pb, 'string_value', 'stringValue');
    if (typeof str === 'string') out.set(key, str);
    else fail(atKey(ctx, key), 'must be a string (sidemirror matches string values only)');
  }
  return out;
}

const NO_METADATA: ReadonlyMap<string, string> = new Map();

/**
 * An endpoint's metadata.filter_metadata["envoy.transport_socket_match"]. Other metadata is
 * opaque data to Envoy unless a feature reads it, and none that sidemirror has does.
 */
export function endpointTransportSocketMatch(metadata: Pb | undefined, ctx: Ctx): ReadonlyMap<string, string> {
  const fm = metadata?.filter_metadata as Pb | undefined;
  const struct = fm?.[TRANSPORT_SOCKET_MATCH_KEY] as Pb | undefined;
  if (!struct) return NO_METADATA;
  return stringStruct(struct, atKey(at(at(ctx, 'metadata'), 'filter_metadata'), TRANSPORT_SOCKET_MATCH_KEY));
}
