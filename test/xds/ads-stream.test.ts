import * as grpc from '@grpc/grpc-js';
import { loadBootstrapText } from '../../src/config/load';
import { messageType } from '../../src/config/proto';
import { CLUSTER_TYPE } from '../../src/config/resources';
import { startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { BearerToken } from '../../src/util/bearer-token';
import { AdsStream } from '../../src/xds/ads-stream';
import { adsConnection } from '../../src/xds/ads-target';

// The sidecar's ADS stream against real gRPC servers: the bootstrap's initial_metadata reaches
// the control plane, the receive limit applies, and a stream that breaks right after a partial
// success does not get its backoff reset (the reconnect-forever loop of an oversized push).

jest.setTimeout(60_000);

const ADS = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
const RESPONSE = messageType('envoy.service.discovery.v3.DiscoveryResponse');
const REQUEST = messageType('envoy.service.discovery.v3.DiscoveryRequest');

function adsBootstrap(port: number, grpcService: Record<string, unknown>): string {
  return JSON.stringify({
    node: { id: 'n1', cluster: 'c' },
    dynamic_resources: { ads_config: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'xds' }, ...grpcService }] }, cds_config: { ads: {} }, lds_config: { ads: {} } },
    static_resources: {
      clusters: [{ name: 'xds', type: 'STATIC', connect_timeout: '1s',
        load_assignment: { cluster_name: 'xds', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] } }],
    },
  });
}

test('initial_metadata from the bootstrap authenticates the ADS stream; without it the control plane refuses', async () => {
  const cp = await startControlPlane({
    initialText: JSON.stringify({ resources: [{ '@type': CLUSTER_TYPE, name: 'a', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } },
      { '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', cluster_name: 'a' }] }),
    listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger(), xdsToken: new BearerToken('tok-1'),
  });
  const run = (grpcService: Record<string, unknown>): Promise<string> => {
    const { target, channel } = adsConnection(loadBootstrapText(adsBootstrap(cp.port, grpcService)).bootstrap);
    return new Promise((resolve) => {
      const stream: AdsStream = new AdsStream(target, {
        onOpen: () => stream.send({ node: { id: 'n1', cluster: 'c' }, type_url: CLUSTER_TYPE }),
        onResponse: () => { stream.close(); resolve('response'); },
        onClose: (reason) => { stream.close(); resolve(reason); },
      }, { baseMs: 100, maxMs: 1000 }, channel);
      stream.start();
    });
  };
  try {
    expect(await run({ initial_metadata: [{ key: 'authorization', value: 'Bearer tok-1' }] })).toBe('response');
    expect(await run({})).toMatch(/^UNAUTHENTICATED/);
    expect(await run({ initial_metadata: [{ key: 'authorization', value: 'Bearer tok-2' }] })).toMatch(/^UNAUTHENTICATED/);
  } finally {
    await cp.close();
  }
});

test('initial_metadata keys gRPC cannot send are refused by path', () => {
  const bad = adsBootstrap(1, { initial_metadata: [{ key: 'Authorization', value: 'x' }, { key: 'x-bin', value: 'x' }, { key: 'ok', value: 'a\nb' }] });
  expect(() => loadBootstrapText(bad)).toThrow(/initial_metadata\[0\]\.key.*\n.*initial_metadata\[1\]\.key: binary metadata.*not supported by sidemirror\n.*initial_metadata\[2\]\.value/);
  const max = loadBootstrapText(adsBootstrap(1, { envoy_grpc: { cluster_name: 'xds', max_receive_message_length: 2048 } })).bootstrap;
  expect(adsConnection(max).channel.maxReceiveMessageBytes).toBe(2048);
});

test('a push over the receive limit after a good response does not reset the backoff', async () => {
  // A server that, on every stream, sends one small response and then one over the client's limit.
  const server = new grpc.Server();
  let opened = 0;
  const encode = (v: Record<string, unknown>): Buffer => Buffer.from(RESPONSE.encode(RESPONSE.fromObject(v)).finish());
  server.addService({
    StreamAggregatedResources: {
      path: `/${ADS}/StreamAggregatedResources`, requestStream: true, responseStream: true,
      requestSerialize: (v: Buffer) => v, requestDeserialize: (b: Buffer) => REQUEST.decode(b),
      responseSerialize: (v: Buffer) => v, responseDeserialize: (b: Buffer) => b,
    },
  }, {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<unknown, Buffer>) => {
      opened += 1;
      call.once('data', () => {
        call.write(encode({ version_info: '1', type_url: CLUSTER_TYPE, nonce: '1', resources: [] }));
        call.write(encode({ version_info: '2', type_url: CLUSTER_TYPE, nonce: '2', resources: [{ type_url: CLUSTER_TYPE, value: Buffer.alloc(8192) }] }));
      });
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const reasons: string[] = [];
  let responses = 0;
  const stream: AdsStream = new AdsStream(`127.0.0.1:${port}`, {
    onOpen: () => stream.send({ node: { id: 'n1', cluster: 'c' }, type_url: CLUSTER_TYPE }),
    onResponse: () => { responses += 1; },
    onClose: (reason) => reasons.push(reason),
  }, { baseMs: 100, maxMs: 5000 }, { maxReceiveMessageBytes: 4096 });
  try {
    stream.start();
    await new Promise((r) => setTimeout(r, 4000));
  } finally {
    stream.close();
    server.forceShutdown();
  }
  expect(responses).toBeGreaterThan(0);
  expect(reasons[0]).toMatch(/^RESOURCE_EXHAUSTED/);
  // Backoff growing from 100 ms (full jitter, ceilings 100, 200, 400… ms): at most ~8 streams
  // in 4 s (15 allows for unlucky jitter). Reset on every first response (the old behaviour), it was one per ~75 ms: ~50.
  expect(opened).toBeGreaterThanOrEqual(2);
  expect(opened).toBeLessThanOrEqual(15);
});
