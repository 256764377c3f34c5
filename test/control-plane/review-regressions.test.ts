// Regressions found in review of the control plane, each shown over real gRPC on 127.0.0.1.
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_TYPE, ENDPOINT_TYPE } from '../../src/config/resources';
import { type ControlPlane, startControlPlane } from '../../src/control-plane/main';
import { silentLogger } from '../../src/log/logger';
import { XdsTestClient } from './xds-client';

type Json = Record<string, unknown>;

function edsCluster(name: string): Json {
  return { '@type': CLUSTER_TYPE, name, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {} } } };
}

function assignment(name: string, port: number): Json {
  return {
    '@type': ENDPOINT_TYPE,
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
  };
}

function doc(port: number): string {
  return JSON.stringify({ version_info: 'v1', resources: [edsCluster('service1'), assignment('service1', port)] });
}

const NODE = { id: 'sidecar-1', cluster: 'frontend' };
let cp: ControlPlane | null = null;
let clients: XdsTestClient[] = [];

function connect(method?: string): XdsTestClient {
  const c = new XdsTestClient(cp!.port, method);
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await cp?.close();
  cp = null;
});

describe('control plane review regressions', () => {
  test.each([
    ['an ADS request without type_url', undefined, {}],
    ['a per-type stream asked for another type', '/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters', { type_url: ENDPOINT_TYPE }],
  ])('a stream of the same node that fails on its first request (%s) does not make the healthy stream get unchanged clusters again', async (_what, method, extra) => {
    cp = await startControlPlane({ initialText: doc(18081), listen: { host: '127.0.0.1', port: 0 }, logger: silentLogger() });
    const good = connect();
    good.send({ node: NODE, type_url: CLUSTER_TYPE });
    const r = await good.next();
    good.send({ type_url: CLUSTER_TYPE, version_info: r.version_info, response_nonce: r.nonce });
    await good.expectNothing(100);

    const bad = connect(method);
    bad.send({ node: NODE, ...extra });
    expect((await bad.ended()).code).toBe(grpc.status.INVALID_ARGUMENT);

    // Only the endpoints change: the clusters of this node did not, so nothing goes out on CDS.
    cp.setResourcesText(doc(18082));
    await good.expectNothing();
  });
});
