import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { protoDir } from '../../config/proto';

// What operators' tools expect of a gRPC server: grpc.health.v1 (for probes and load balancers)
// and server reflection (so `grpcurl -plaintext HOST:PORT list` works without .proto files).
// Reflection needs a proto-loader package definition (it serves FileDescriptorProtos); this is
// the only proto-loader use, at startup, and never touches the xDS request path.

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

const XDS_PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/listener/v3/lds.proto',
  'envoy/service/route/v3/rds.proto',
  'envoy/service/cluster/v3/cds.proto',
  'envoy/service/endpoint/v3/eds.proto',
];

/** Registers health checking (SERVING for '' and each name in `services`) and reflection. */
export function addIntrospection(server: grpc.Server, services: readonly string[]): HealthImplementation {
  const health = new HealthImplementation(Object.fromEntries(['', ...services].map((s) => [s, 'SERVING' as const])));
  health.addToServer(server);
  const pkg = protoLoader.loadSync(XDS_PROTO_FILES, { includeDirs: [protoDir()], keepCase: true });
  new ReflectionService(pkg).addToServer(server);
  return health;
}
