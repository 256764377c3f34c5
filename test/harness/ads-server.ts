import * as grpc from '@grpc/grpc-js';
import { decodeProto3Json } from '../../src/config/proto-json';
import { messageType, typeForUrl } from '../../src/config/proto';

// A bare ADS server for tests that need to push what a real control plane would refuse to
// (an invalid resource, to see the sidecar NACK it). Real gRPC on 127.0.0.1; stopped by handle.

export interface SeenRequest {
  readonly version_info: string;
  readonly resource_names: string[];
  readonly type_url: string;
  readonly response_nonce: string;
  readonly error_detail?: { code: number; message: string };
  readonly node?: { id: string };
}

type Json = Record<string, unknown>;

export interface RawAdsServer {
  readonly port: number;
  readonly requests: SeenRequest[];
  /** Sends a response of `typeUrl` to every open stream: resources as proto3 JSON with `@type`. */
  push(typeUrl: string, version: string, resources: Json[]): void;
  /** Resolves with the first request matching `pred` (bounded wait). */
  waitFor(pred: (r: SeenRequest) => boolean, timeoutMs?: number): Promise<SeenRequest>;
  close(): Promise<void>;
}

export async function startRawAdsServer(): Promise<RawAdsServer> {
  const reqType = messageType('envoy.service.discovery.v3.DiscoveryRequest');
  const resType = messageType('envoy.service.discovery.v3.DiscoveryResponse');
  const requests: SeenRequest[] = [];
  const waiters = new Set<() => void>();
  const streams = new Set<grpc.ServerDuplexStream<SeenRequest, Json>>();
  let nonce = 0;
  const server = new grpc.Server();
  server.addService({
    StreamAggregatedResources: {
      path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
      requestStream: true,
      responseStream: true,
      requestDeserialize: (b: Buffer) => reqType.toObject(reqType.decode(b), { defaults: true, arrays: true }) as SeenRequest,
      requestSerialize: (v: SeenRequest) => Buffer.from(reqType.encode(reqType.fromObject(v)).finish()),
      responseSerialize: (v: Json) => Buffer.from(resType.encode(resType.fromObject(v)).finish()),
      responseDeserialize: (b: Buffer) => resType.toObject(resType.decode(b)) as Json,
    },
  } as grpc.ServiceDefinition, {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<SeenRequest, Json>) => {
      streams.add(call);
      call.on('data', (r: SeenRequest) => {
        requests.push(r);
        waiters.forEach((w) => w());
      });
      call.on('end', () => { streams.delete(call); call.end(); });
      call.on('error', () => streams.delete(call));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    requests,
    push(typeUrl, version, resources) {
      const anys = resources.map((r) => {
        const type = typeForUrl(String(r['@type']))!;
        const { '@type': _t, ...body } = r;
        const decoded = decodeProto3Json(type, body, 'resource');
        if (!decoded.message) throw new Error(decoded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
        return { type_url: typeUrl, value: type.encode(decoded.message).finish() };
      });
      nonce++;
      for (const s of streams) s.write({ version_info: version, resources: anys, type_url: typeUrl, nonce: String(nonce) });
    },
    waitFor(pred, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = requests.find(pred);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching xDS request within ${timeoutMs} ms; saw ${JSON.stringify(requests.map((r) => [r.type_url, r.version_info, r.response_nonce, r.error_detail?.message]))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const s of streams) s.end();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      server.forceShutdown();
    },
  };
}
