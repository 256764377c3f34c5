import type * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { protoRoot } from '../../config/proto';

// gRPC service definitions built straight from our protobufjs root (proto/), so the server
// encodes with the same types the rest of the program decodes with; no second proto loader on
// the request path. Messages cross the handler boundary as plain snake_case objects.

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, arrays: true };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Plain = Record<string, any>;

function codecFor(type: protobuf.Type): { serialize: (v: Plain) => Buffer; deserialize: (b: Buffer) => Plain } {
  return {
    serialize: (v) => Buffer.from(type.encode(type.fromObject(v)).finish()),
    deserialize: (b) => type.toObject(type.decode(b), TO_OBJECT),
  };
}

/** A grpc-js service definition for `envoy.service.discovery.v3.AggregatedDiscoveryService` and friends. */
export function serviceDefinition(fullName: string): grpc.ServiceDefinition {
  const service = protoRoot().lookupService(fullName);
  const def: Record<string, grpc.MethodDefinition<Plain, Plain>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const req = codecFor(method.resolvedRequestType!);
    const res = codecFor(method.resolvedResponseType!);
    def[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: Boolean(method.requestStream),
      responseStream: Boolean(method.responseStream),
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
    };
  }
  return def;
}

/** envoy.service.discovery.v3.DiscoveryRequest, the fields the server reads. */
export interface DiscoveryRequest {
  readonly versionInfo: string;
  /** Present on a stream's first request; later ones may omit it. */
  readonly node: { readonly id: string; readonly cluster: string } | null;
  readonly resourceNames: readonly string[];
  readonly typeUrl: string;
  readonly responseNonce: string;
  /** Set ⇒ NACK. */
  readonly errorDetail: { readonly code: number; readonly message: string } | null;
}

export function readDiscoveryRequest(o: Plain): DiscoveryRequest {
  const node = o.node as Plain | null;
  const err = o.error_detail as Plain | null;
  return {
    versionInfo: String(o.version_info ?? ''),
    node: node ? { id: String(node.id ?? ''), cluster: String(node.cluster ?? '') } : null,
    resourceNames: ((o.resource_names as unknown[] | undefined) ?? []).map(String),
    typeUrl: String(o.type_url ?? ''),
    responseNonce: String(o.response_nonce ?? ''),
    errorDetail: err ? { code: Number(err.code ?? 0), message: String(err.message ?? '') } : null,
  };
}

export const CONTROL_PLANE_ID = 'sidemirror-control-plane';

/** A DiscoveryResponse as the plain object the serializer takes. */
export function discoveryResponse(typeUrl: string, version: string, nonce: string, resources: readonly Uint8Array[]): Plain {
  return {
    version_info: version,
    resources: resources.map((value) => ({ type_url: typeUrl, value })),
    type_url: typeUrl,
    nonce,
    control_plane: { identifier: CONTROL_PLANE_ID },
  };
}
