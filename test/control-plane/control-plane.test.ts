import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { service as healthService } from 'grpc-health-check';
import { ConfigError } from '../../src/config/errors';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/config/resources';
import { type ControlPlane, parseHostPort, startControlPlane } from '../../src/control-plane/main';
import { XdsTestClient } from './xds-client';

type Json = Record<string, unknown>;

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

// ---- resource builders (intent-level, like grpc-js-xds's test framework) ----

function rdsListener(name: string, routeConfigName: string): Json {
  return {
    '@type': LISTENER_TYPE,
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: 10000 } },
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM_TYPE,
          stat_prefix: 'ingress_http',
          rds: { route_config_name: routeConfigName, config_source: { ads: {} } },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
        },
      }],
    }],
  };
}

function routeConfig(name: string, cluster: string, mirror: string): Json {
  return {
    '@type': ROUTE_TYPE,
    name,
    virtual_hosts: [{
      name: 'backend',
      domains: ['*'],
      routes: [{ match: { prefix: '/' }, route: { cluster, request_mirror_policies: [{ cluster: mirror }] } }],
    }],
  };
}

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

function staticCluster(name: string, port: number): Json {
  const { '@type': _t, ...load_assignment } = assignment(name, port);
  return { '@type': CLUSTER_TYPE, name, type: 'STATIC', connect_timeout: '1s', load_assignment };
}

/** A listener on RDS, its route, an EDS cluster with its CLA, a STATIC mirror cluster, a second EDS cluster. */
function baseResources(): Json[] {
  return [
    rdsListener('ingress', 'local_route'),
    routeConfig('local_route', 'service1', 'service1-mirror'),
    edsCluster('service1'),
    assignment('service1', 18081),
    staticCluster('service1-mirror', 18082),
    edsCluster('service2'),
    assignment('service2', 18083),
  ];
}

function doc(resources: Json[], extra: Json = {}): string {
  return JSON.stringify({ version_info: 'v1', resources, ...extra }, null, 2);
}

// ---- harness ----

let dir: string;
let file: string;
let cp: ControlPlane | null;
let clients: XdsTestClient[];
let logLines: string[];

function capturingLogger(): pino.Logger {
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return pino({ level: 'debug' }, sink);
}

async function start(text = doc(baseResources())): Promise<ControlPlane> {
  fs.writeFileSync(file, text);
  cp = await startControlPlane({
    resourcesFile: file,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    logger: capturingLogger(),
  });
  return cp;
}

function connect(port = cp!.port, method?: string): XdsTestClient {
  const c = new XdsTestClient(port, method);
  clients.push(c);
  return c;
}

async function admin(pathname: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${cp!.adminPort}${pathname}`, init);
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

const NODE = { id: 'sidecar-1', cluster: 'frontend' };

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-cp-'));
  file = path.join(dir, 'resources.yaml');
  clients = [];
  cp = null;
});

afterEach(async () => {
  for (const c of clients) c.close();
  await cp?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---- tests ----

describe('state of the world over ADS', () => {
  test('a wildcard CDS request gets every cluster with version, nonce and control plane id', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    const r = await c.next();
    expect(r.type_url).toBe(CLUSTER_TYPE);
    expect(r.version_info).toBe('v1-1');
    expect(r.nonce).not.toBe('');
    expect(r.control_plane?.identifier).toBe('sidemirror-control-plane');
    expect(r.names.sort()).toEqual(['service1', 'service1-mirror', 'service2']);
  });

  test('an ACK is recorded and not answered', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    const r = await c.next();
    c.send({ type_url: CLUSTER_TYPE, version_info: r.version_info, response_nonce: r.nonce });
    await c.expectNothing();
    const nodes = (await admin('/nodes')).body;
    expect(nodes['sidecar-1']).toMatchObject({ cluster: 'frontend', streams: 1, types: { cds: { sent_version: 'v1-1', acked_version: 'v1-1', last_nack: null } } });
    expect(logLines.some((l) => l.includes('"msg":"ACK"') && l.includes('sidecar-1'))).toBe(true);
  });

  test('a NACK is recorded with its error and the same version is not sent again', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    const r = await c.next();
    c.send({ type_url: CLUSTER_TYPE, version_info: '', response_nonce: r.nonce, error_detail: { code: 3, message: 'cluster service2: bad thing' } });
    await c.expectNothing();
    const nack = (await admin('/nodes')).body['sidecar-1'].types.cds.last_nack;
    expect(nack).toMatchObject({ version: 'v1-1', nonce: r.nonce, error: 'cluster service2: bad thing' });
    expect(typeof nack.at).toBe('string');
    expect((await admin('/metrics')).body).toMatch(/sidemirror_cp_nacks_total\{type="cds"\} 1/);
  });

  test('a request with a stale nonce is ignored', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: ENDPOINT_TYPE, resource_names: ['service1'] });
    const r = await c.next();
    // Stale: an old nonce asking for more names gets nothing…
    c.send({ type_url: ENDPOINT_TYPE, resource_names: ['service1', 'service2'], response_nonce: 'not-the-latest', version_info: r.version_info });
    await c.expectNothing();
    // …the same request with the latest nonce is answered.
    c.send({ type_url: ENDPOINT_TYPE, resource_names: ['service1', 'service2'], response_nonce: r.nonce, version_info: r.version_info });
    expect((await c.next()).names.sort()).toEqual(['service1', 'service2']);
  });

  test('RDS and EDS send only the requested names, and again when the set grows', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: ENDPOINT_TYPE, resource_names: ['service2'] });
    const eds = await c.next();
    expect(eds.names).toEqual(['service2']);
    c.send({ node: NODE, type_url: ROUTE_TYPE, resource_names: ['local_route'] });
    const rds = await c.next();
    expect(rds.type_url).toBe(ROUTE_TYPE);
    expect(rds.names).toEqual(['local_route']);
    c.send({ type_url: ENDPOINT_TYPE, resource_names: ['service2', 'service1'], response_nonce: eds.nonce, version_info: eds.version_info });
    const grown = await c.next();
    expect(grown.names.sort()).toEqual(['service1', 'service2']);
    expect(grown.nonce).not.toBe(eds.nonce);
  });

  test('a node whose stream closed shows zero streams', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    await c.next();
    c.close();
    for (let i = 0; i < 50 && (await admin('/nodes')).body['sidecar-1'].streams !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await admin('/nodes')).body['sidecar-1'].streams).toBe(0);
  });

  test('the first request must carry the node', async () => {
    await start();
    const c = connect();
    c.send({ type_url: CLUSTER_TYPE });
    expect((await c.ended()).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  test('per-type StreamClusters serves clusters; delta answers UNIMPLEMENTED', async () => {
    await start();
    const c = connect(cp!.port, '/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters');
    c.send({ node: NODE });
    expect((await c.next()).names).toHaveLength(3);
    const d = connect(cp!.port, '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources');
    expect((await d.ended()).code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('updates', () => {
  test('a file edit pushes a new version within a second, clusters before listeners', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    const cds = await c.next();
    c.send({ type_url: CLUSTER_TYPE, version_info: cds.version_info, response_nonce: cds.nonce });
    c.send({ node: NODE, type_url: LISTENER_TYPE });
    const lds = await c.next();
    c.send({ type_url: LISTENER_TYPE, version_info: lds.version_info, response_nonce: lds.nonce });
    await c.expectNothing(150);

    const t0 = Date.now();
    const next = [...baseResources(), staticCluster('service3', 18084)];
    next[0] = { ...rdsListener('ingress', 'local_route'), per_connection_buffer_limit_bytes: 32768 };
    fs.writeFileSync(file, doc(next));
    const first = await c.next(1000);
    const second = await c.next(1000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect([first.type_url, second.type_url]).toEqual([CLUSTER_TYPE, LISTENER_TYPE]);
    expect(first.version_info).toBe('v1-2');
    expect(first.names).toContain('service3');
  });

  test('an editor-style rename-replace is picked up', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    await c.next();
    const tmp = path.join(dir, '.resources.yaml.swp');
    fs.writeFileSync(tmp, doc([...baseResources(), staticCluster('service3', 18084)]));
    fs.renameSync(tmp, file);
    expect((await c.next(1000)).names).toContain('service3');
  });

  test('an invalid edit keeps the previous snapshot and says why, with the path', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    await c.next();
    const bad = baseResources();
    bad[4] = { ...staticCluster('service1-mirror', 18082), connect_timeout: 'soon' };
    fs.writeFileSync(file, doc(bad));
    await c.expectNothing(500);
    const snap = (await admin('/snapshot')).body;
    expect(snap.version).toBe('v1-1');
    expect(snap.last_rejection.issues).toEqual([expect.objectContaining({ path: 'resources[4].connect_timeout' })]);
    const line = logLines.find((l) => l.includes('rejected'));
    expect(line).toContain('resources[4].connect_timeout');
  });

  test('a route to a missing cluster is rejected with the path of the reference', async () => {
    await start();
    const bad = baseResources();
    bad[1] = routeConfig('local_route', 'service1', 'nowhere');
    let error: unknown;
    try {
      cp!.setResourcesText(doc(bad));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      { path: 'resources[1].virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster', message: 'unknown cluster "nowhere"' },
    ]);
    expect(cp!.cache.version).toBe('v1-1');
  });

  test('an EDS cluster without its assignment and an RDS listener without its route are inconsistent', async () => {
    const bad = baseResources().filter((r) => r['@type'] !== ROUTE_TYPE && r.cluster_name !== 'service2');
    const started = start(doc(bad));
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    const issues = await started.catch((e: ConfigError) => e.issues);
    expect(issues).toEqual(expect.arrayContaining([
      expect.objectContaining({ path: 'resources[4].name', message: expect.stringContaining('no ClusterLoadAssignment') }),
      expect.objectContaining({ path: 'resources[0].filter_chains[0].filters[0].typed_config.rds.route_config_name' }),
    ]));
  });
});

describe('node overrides', () => {
  const overrides = [
    // Nodes of cluster "canary" send their mirror elsewhere and get an extra cluster.
    { node: { cluster: 'canary' }, resources: [staticCluster('service1-mirror', 19082), staticCluster('canary-only', 19000)] },
    // Node "special" (whatever its cluster) gets its own mirror endpoint; id beats cluster.
    { node: { id: 'special' }, resources: [staticCluster('service1-mirror', 20082)] },
  ];

  const mirrorPort = (r: { resources: Array<{ value: any }> }): number =>
    r.resources.find((x) => x.value.name === 'service1-mirror')!.value.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value;

  test('by cluster and by id, id taking precedence', async () => {
    await start(doc(baseResources(), { node_overrides: overrides }));
    const plain = connect();
    plain.send({ node: NODE, type_url: CLUSTER_TYPE });
    const p = await plain.next();
    expect(mirrorPort(p)).toBe(18082);
    expect(p.names).not.toContain('canary-only');

    const canary = connect();
    canary.send({ node: { id: 'c-1', cluster: 'canary' }, type_url: CLUSTER_TYPE });
    const c = await canary.next();
    expect(mirrorPort(c)).toBe(19082);
    expect(c.names).toContain('canary-only');

    const special = connect();
    special.send({ node: { id: 'special', cluster: 'canary' }, type_url: CLUSTER_TYPE });
    const s = await special.next();
    expect(mirrorPort(s)).toBe(20082);
    expect(s.names).toContain('canary-only');
  });

  test('an override that breaks consistency is rejected with its path', async () => {
    await start();
    const bad = [{ node: { id: 'x' }, resources: [routeConfig('local_route', 'ghost', 'service1-mirror')] }];
    expect(() => cp!.setResourcesText(doc(baseResources(), { node_overrides: bad }))).toThrow(
      /node_overrides\[0\]\.resources\[0\]\.virtual_hosts\[0\]\.routes\[0\]\.route\.cluster: unknown cluster "ghost"/,
    );
  });
});

describe('admin API', () => {
  test('PUT /snapshot installs and pushes; bad input is a 400 with issue paths', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    await c.next();

    const ok = await admin('/snapshot', { method: 'PUT', body: JSON.stringify({ resources: [...baseResources(), staticCluster('put-cluster', 1)] }) });
    expect(ok).toEqual({ status: 200, body: { version: '2' } });
    const pushed = await c.next(1000);
    expect(pushed.version_info).toBe('2');
    expect(pushed.names).toContain('put-cluster');

    const bad = await admin('/snapshot', { method: 'PUT', body: JSON.stringify({ resources: [{ '@type': CLUSTER_TYPE, name: 'x', typo: 1 }] }) });
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'resources[0].typo' })]));
    expect((await admin('/snapshot')).body.version).toBe('2');
  });

  test('GET /snapshot returns proto3 JSON that PUT accepts back', async () => {
    await start();
    const snap = (await admin('/snapshot')).body;
    expect(snap.version_info).toBe('v1');
    expect(snap.resources[0]['@type']).toBe(LISTENER_TYPE);
    expect(snap.resources.map((r: Json) => r.name ?? r.cluster_name)).toEqual(
      ['ingress', 'local_route', 'service1', 'service1', 'service1-mirror', 'service2', 'service2']);
    const { version: _v, ...body } = snap;
    expect((await admin('/snapshot', { method: 'PUT', body: JSON.stringify(body) })).status).toBe(200);
  });

  test('/ready and /metrics', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    await c.next();
    expect((await admin('/ready')).status).toBe(200);
    const metrics = (await admin('/metrics')).body as string;
    expect(metrics).toMatch(/sidemirror_cp_connected_streams 1/);
    expect(metrics).toMatch(/sidemirror_cp_responses_sent_total\{type="cds"\} 1/);
  });
});

describe('gRPC introspection', () => {
  test('health check answers SERVING for the server and the ADS service', async () => {
    await start();
    const Health = grpc.makeClientConstructor(healthService, 'grpc.health.v1.Health');
    const client = new Health(`127.0.0.1:${cp!.port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
    const check = (service: string) => new Promise<any>((resolve, reject) => {
      client.Check({ service }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res)));
    });
    try {
      expect(await check('')).toEqual({ status: 'SERVING' });
      expect(await check('envoy.service.discovery.v3.AggregatedDiscoveryService')).toEqual({ status: 'SERVING' });
    } finally {
      client.close();
    }
  });

  test('reflection lists the ADS service', async () => {
    await start();
    const protoFile = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { keepCase: true })) as any;
    const client = new pkg.grpc.reflection.v1.ServerReflection(`127.0.0.1:${cp!.port}`, grpc.credentials.createInsecure());
    try {
      const names = await new Promise<string[]>((resolve, reject) => {
        const call = client.ServerReflectionInfo();
        call.on('data', (r: any) => {
          resolve(r.list_services_response.service.map((s: { name: string }) => s.name));
          call.end();
        });
        call.on('error', reject);
        call.write({ list_services: '' });
      });
      expect(names).toEqual(expect.arrayContaining([
        'envoy.service.discovery.v3.AggregatedDiscoveryService',
        'envoy.service.cluster.v3.ClusterDiscoveryService',
      ]));
    } finally {
      client.close();
    }
  });
});

describe('startup', () => {
  test('parseHostPort', () => {
    expect(parseHostPort('127.0.0.1:18000')).toEqual({ host: '127.0.0.1', port: 18000 });
    expect(parseHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseHostPort(':9')).toEqual({ host: '0.0.0.0', port: 9 });
    expect(() => parseHostPort('nope')).toThrow(ConfigError);
  });

  test('an unparsable initial file rejects with a ConfigError and binds nothing', async () => {
    await expect(start('resources: [')).rejects.toBeInstanceOf(ConfigError);
    expect(cp).toBeNull();
  });

  test('close() ends open streams with OK', async () => {
    await start();
    const c = connect();
    c.send({ node: NODE, type_url: CLUSTER_TYPE });
    await c.next();
    await cp!.close();
    expect((await c.ended()).code).toBe(grpc.status.OK);
  });
});
