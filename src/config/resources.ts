import type * as protobuf from 'protobufjs';
import { type LocalReads, type Pb, plain } from './decode/common';
import { decodeCluster, decodeClusterLoadAssignment } from './decode/cluster';
import { decodeListener } from './decode/listener';
import { decodeRouteConfiguration } from './decode/route';
import { decodeSecret } from './decode/tls';
import { type ConfigIssue, IssueCollector } from './errors';
import type { Cluster, ClusterLoadAssignment, Listener, RouteConfiguration } from './model';
import type { Secret } from './transport-model';
import { TYPE_URL_PREFIX, messageType } from './proto';
import { undeclaredWireFields } from './wire-fields';

// The five xDS resource types, shared by the sidecar's xDS client and the control plane: one
// place that knows each type's URL, message, name field and decoder (grpc-js-xds's
// XdsResourceType, in our model's terms).

export const LISTENER_TYPE = `${TYPE_URL_PREFIX}envoy.config.listener.v3.Listener`;
export const ROUTE_TYPE = `${TYPE_URL_PREFIX}envoy.config.route.v3.RouteConfiguration`;
export const CLUSTER_TYPE = `${TYPE_URL_PREFIX}envoy.config.cluster.v3.Cluster`;
export const ENDPOINT_TYPE = `${TYPE_URL_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`;
/** SDS: TLS certificates and validation contexts that listeners and clusters name with `sds_config: { ads: {} }`. */
export const SECRET_TYPE = `${TYPE_URL_PREFIX}envoy.extensions.transport_sockets.tls.v3.Secret`;

export interface ResourceModels {
  [LISTENER_TYPE]: Listener;
  [ROUTE_TYPE]: RouteConfiguration;
  [CLUSTER_TYPE]: Cluster;
  [ENDPOINT_TYPE]: ClusterLoadAssignment;
  [SECRET_TYPE]: Secret;
}

export type ResourceTypeUrl = keyof ResourceModels;

/**
 * Make-before-break order of Envoy's ADS: clusters, endpoints, listeners, routes, with secrets
 * first. SDS is subscribed by name and the names come from clusters and listeners: Envoy pauses
 * SDS while it applies a CDS or LDS response (cds_api_helper.cc, lds_api.cc), so the requests
 * for newly named secrets follow that ACK and the cluster or listener warms until they arrive.
 * A secret already subscribed is pushed before the resources that use it, so a rotated CA or
 * certificate is in place before a changed cluster or listener starts using it.
 */
export const TYPE_ORDER: readonly ResourceTypeUrl[] = [SECRET_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];

/** Short names for logs and stats. */
export const TYPE_SHORT: Readonly<Record<ResourceTypeUrl, string>> = {
  [LISTENER_TYPE]: 'lds',
  [ROUTE_TYPE]: 'rds',
  [CLUSTER_TYPE]: 'cds',
  [ENDPOINT_TYPE]: 'eds',
  [SECRET_TYPE]: 'sds',
};

/** Wildcard types carry the full state in every response (absence means deletion). */
export function isWildcardType(typeUrl: ResourceTypeUrl): boolean {
  return typeUrl === LISTENER_TYPE || typeUrl === CLUSTER_TYPE;
}

export function isResourceType(typeUrl: string): typeUrl is ResourceTypeUrl {
  return typeUrl === LISTENER_TYPE || typeUrl === ROUTE_TYPE || typeUrl === CLUSTER_TYPE || typeUrl === ENDPOINT_TYPE || typeUrl === SECRET_TYPE;
}

export function resourceMessageType(typeUrl: ResourceTypeUrl): protobuf.Type {
  return messageType(typeUrl.slice(TYPE_URL_PREFIX.length));
}

/** The name of a decoded resource (ClusterLoadAssignment names itself by cluster_name). */
export function resourceName(typeUrl: ResourceTypeUrl, message: Pb): string {
  return String((typeUrl === ENDPOINT_TYPE ? message.cluster_name : message.name) ?? '');
}

export type DecodedResource<T extends ResourceTypeUrl> =
  | { readonly ok: true; readonly name: string; readonly value: ResourceModels[T]; readonly message: protobuf.Message }
  | { readonly ok: false; readonly name: string; readonly issues: readonly ConfigIssue[] };

/** What the decoder takes from the receiver's runtime. */
export interface DecodeOptions {
  /** Runtime `re2.max_program_size.error_level` (default 100). */
  readonly re2MaxProgramSize?: number;
  /** Reads what the config names on this machine (files, env); absent: shape checks only (the control plane). */
  readonly local?: LocalReads;
}

/**
 * Decodes and validates one resource of the given type. Issue paths start with the resource
 * (`Cluster "service1".load_assignment…`) so a NACK says which resource and which field.
 *
 * `local` reads the files and environment variables a resource names (a sidecar's); without it
 * (the control plane) they are only checked for shape.
 */
export function decodeResource<T extends ResourceTypeUrl>(typeUrl: T, message: protobuf.Message, options: DecodeOptions = {}): DecodedResource<T> {
  const type = resourceMessageType(typeUrl);
  const obj = plain(type, message);
  const name = resourceName(typeUrl, obj);
  const issues = new IssueCollector();
  const kind = type.name;
  const ctx = { path: `${kind} "${name}"`, issues, local: options.local, re2MaxProgramSize: options.re2MaxProgramSize };
  if (!name) issues.add(ctx.path, 'a resource must have a name');
  let value: unknown;
  switch (typeUrl) {
    case LISTENER_TYPE:
      value = decodeListener(obj, ctx);
      break;
    case ROUTE_TYPE:
      value = decodeRouteConfiguration(obj, ctx);
      break;
    case CLUSTER_TYPE:
      value = decodeCluster(obj, ctx);
      break;
    case ENDPOINT_TYPE:
      value = decodeClusterLoadAssignment(obj, ctx);
      break;
    case SECRET_TYPE:
      value = decodeSecret(obj, ctx);
      break;
  }
  if (!issues.ok) return { ok: false, name, issues: issues.issues };
  return { ok: true, name, value: value as ResourceModels[T], message };
}

/** Decodes a resource from the bytes of an Any (as it arrives over xDS). */
export function decodeResourceBytes<T extends ResourceTypeUrl>(typeUrl: T, bytes: Uint8Array, options: DecodeOptions = {}): DecodedResource<T> {
  let message: protobuf.Message;
  try {
    message = resourceMessageType(typeUrl).decode(bytes);
  } catch (err) {
    return { ok: false, name: '', issues: [{ path: typeUrl, message: `cannot decode: ${(err as Error).message}` }] };
  }
  const decoded = decodeResource(typeUrl, message, options);
  // Envoy fields that decoding skipped (ours does not declare them) reject the resource too.
  const type = resourceMessageType(typeUrl);
  const undeclared = undeclaredWireFields(type, bytes, `${type.name} "${decoded.name}"`);
  if (undeclared.length === 0) return decoded;
  return { ok: false, name: decoded.name, issues: [...undeclared, ...(decoded.ok ? [] : decoded.issues)] };
}

export type DecodedSecret = DecodedResource<typeof SECRET_TYPE>;

/** Decodes and validates one Secret; issue paths start with `Secret "name"`. */
export function decodeSecretResource(message: protobuf.Message, options: DecodeOptions = {}): DecodedSecret {
  return decodeResource(SECRET_TYPE, message, options);
}

/** A Secret from the bytes of an Any, with Envoy's fields that proto/ leaves out refused by path. */
export function decodeSecretResourceBytes(bytes: Uint8Array, options: DecodeOptions = {}): DecodedSecret {
  return decodeResourceBytes(SECRET_TYPE, bytes, options);
}

/**
 * The largest xDS message by default, both ways: grpc-js's default receive limit. The control
 * plane refuses snapshots that would need bigger responses (--max-message-bytes); a sidecar
 * refuses bigger messages unless its bootstrap sets envoy_grpc.max_receive_message_length.
 */
export const DEFAULT_MAX_XDS_MESSAGE_BYTES = 4 * 1024 * 1024;
