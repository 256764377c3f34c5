import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { SERVICES } from '../../examples/route-mirror/sandbox';
import { ConfigError } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { checkResourceSet } from '../../src/control-plane/cache/consistency';
import { parseResourcesText } from '../../src/control-plane/resources-file';

// docker-compose.yml and the files it mounts, checked without Docker: the topology of Envoy's
// route-mirror sandbox, healthchecks and start order, and the docker/ configs being the native
// xds/ ones with only the addresses changed.

const ROOT = path.resolve(__dirname, '..', '..');
const EXAMPLE = path.join(ROOT, 'examples', 'route-mirror');
const read = (file: string): string => fs.readFileSync(file, 'utf8');

type Json = Record<string, any>;

interface ComposeService {
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
}

const compose = parse(read(path.join(ROOT, 'docker-compose.yml')), { merge: true }) as { services: Record<string, ComposeService> };
const services = compose.services;
const OTHERS = ['control-plane', ...SERVICES.map((s) => s.name)];

/** `${VAR:-default}` → default, as compose interpolates with the variable unset. */
const interpolate = (s: string): string => s.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');

/** The port a healthcheck's `net.connect(PORT, …)` probes. */
function healthPort(s: ComposeService): number {
  const m = /connect\((\d+),/.exec((s.healthcheck?.test ?? []).join(' '));
  return m ? Number(m[1]) : NaN;
}

describe('docker-compose.yml', () => {
  test('has exactly the sandbox\'s services', () => {
    expect(Object.keys(services).sort()).toEqual(['control-plane', 'front-proxy', 'service1', 'service1-mirror', 'service2', 'service2-mirror']);
  });

  test('front-proxy publishes 10000', () => {
    const ports = (services['front-proxy']!.ports ?? []).map((p) => interpolate(String(p)));
    expect(ports).toContain('10000:10000');
  });

  test('each service runs with the SERVICE_NAME of the native sandbox, on the port its clusters use', () => {
    for (const s of SERVICES) {
      const env = services[s.name]!.environment ?? {};
      expect({ name: s.name, SERVICE_NAME: env.SERVICE_NAME }).toEqual({ name: s.name, SERVICE_NAME: s.serviceName });
      expect(env.PORT).toBe('8080');
      expect(env.HOST).toBe('0.0.0.0');
      expect(healthPort(services[s.name]!)).toBe(8080);
    }
  });

  test('every service has a healthcheck, probing the port it serves', () => {
    for (const [name, s] of Object.entries(services)) {
      expect({ name, test: s.healthcheck?.test?.[0] }).toEqual({ name, test: 'CMD' });
    }
    expect(healthPort(services['control-plane']!)).toBe(18000);
    expect(services['control-plane']!.command).toEqual(expect.arrayContaining(['--listen', '0.0.0.0:18000']));
    expect(healthPort(services['front-proxy']!)).toBe(10000);
  });

  test('front-proxy starts after every other service is healthy', () => {
    const deps = services['front-proxy']!.depends_on ?? {};
    expect(Object.keys(deps).sort()).toEqual([...OTHERS].sort());
    for (const name of OTHERS) expect({ name, condition: deps[name]?.condition }).toEqual({ name, condition: 'service_healthy' });
    for (const name of OTHERS) expect(services[name]!.depends_on).toBeUndefined();
  });

  test('the files commands and entrypoints name exist in the repository', () => {
    const referenced: string[] = [];
    for (const [name, s] of Object.entries(services)) {
      for (const arg of [...(s.entrypoint ?? []), ...(s.command ?? [])]) {
        if (arg.startsWith('/app/')) referenced.push(path.join(ROOT, arg.slice('/app/'.length)));
        // dist/… is built in the image (WORKDIR /app) from the TypeScript next to it.
        else if (/^dist\/.+\.js$/.test(arg)) referenced.push(path.join(ROOT, arg.slice('dist/'.length).replace(/\.js$/, '.ts')));
        else if (arg.endsWith('.yaml') || arg.endsWith('.js')) throw new Error(`${name}: unexpected path ${arg}`);
      }
    }
    expect(referenced.length).toBeGreaterThanOrEqual(3);
    for (const f of referenced) expect({ file: f, exists: fs.existsSync(f) }).toEqual({ file: f, exists: true });
    // The image's own entrypoint and what it copies.
    const dockerfile = read(path.join(ROOT, 'Dockerfile'));
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    // node flags may come before the CLI (the proxy's young-generation size: src/workers/heap-flags.ts).
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", (?:"--[^"]+", )*"dist\/src\/cli\.js"\]$/m);
    expect(fs.existsSync(path.join(ROOT, 'src', 'cli.ts'))).toBe(true);
    for (const line of dockerfile.split('\n').filter((l) => l.startsWith('COPY '))) {
      for (const src of line.split(/\s+/).slice(1, -1)) expect({ src, exists: fs.existsSync(path.join(ROOT, src)) }).toEqual({ src, exists: true });
    }
  });

  const onPath = (bin: string): boolean => (process.env.PATH ?? '').split(path.delimiter).some((d) => d !== '' && fs.existsSync(path.join(d, bin)));

  test('`docker-compose config -q` accepts it (when docker-compose is installed)', () => {
    // Skipped assertion, not test: nothing else here needs Docker.
    if (!onPath('docker-compose')) return;
    const env = { ...process.env };
    delete env.PORT_PROXY;
    const r = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, timeout: 30_000, encoding: 'utf8', env });
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
  });
});

// ---- docker/ versus xds/ ----

const typeOf = (r: Json): string => String(r['@type']).slice(String(r['@type']).lastIndexOf('.') + 1);
const endpointAddress = (c: Json): Json => c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;

/** Replaces the socket addresses that legitimately differ with a marker, after checking their shape. */
function normaliseResources(doc: Json, flavour: 'docker' | 'native'): Json {
  const copy = structuredClone(doc) as Json;
  for (const r of copy.resources as Json[]) {
    if (typeOf(r) === 'Listener') {
      expect(r.address.socket_address).toEqual({ address: flavour === 'docker' ? '0.0.0.0' : '127.0.0.1', port_value: 10000 });
      r.address.socket_address = 'LISTENER';
    } else if (typeOf(r) === 'Cluster') {
      expect(r.load_assignment.endpoints).toHaveLength(1);
      expect(r.load_assignment.endpoints[0].lb_endpoints).toHaveLength(1);
      const sa = endpointAddress(r);
      // <name>:8080 in compose, 127.0.0.1:<port> natively.
      if (flavour === 'docker') expect(sa).toEqual({ address: r.name, port_value: 8080 });
      else expect(sa).toEqual({ address: '127.0.0.1', port_value: expect.any(Number) });
      r.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address = `ENDPOINT(${r.name})`;
    }
  }
  return copy;
}

function normaliseBootstrap(doc: Json, expected: Json): Json {
  const copy = structuredClone(doc) as Json;
  const xds = (copy.static_resources.clusters as Json[]).find((c) => c.name === 'xds_cluster')!;
  expect(endpointAddress(xds)).toEqual(expected);
  xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address = 'CONTROL_PLANE';
  return copy;
}

describe('examples/route-mirror/docker', () => {
  const dockerResourcesText = read(path.join(EXAMPLE, 'docker', 'resources.yaml'));
  const dockerBootstrapText = read(path.join(EXAMPLE, 'docker', 'front-proxy.yaml'));

  test('resources.yaml is xds/resources.yaml with compose addresses, and its clusters are the compose services', () => {
    const docker = parse(dockerResourcesText) as Json;
    const native = parse(read(path.join(EXAMPLE, 'xds', 'resources.yaml'))) as Json;
    expect(normaliseResources(docker, 'docker')).toEqual(normaliseResources(native, 'native'));
    const clusterNames = (docker.resources as Json[]).filter((r) => typeOf(r) === 'Cluster').map((r) => r.name as string);
    expect(clusterNames.sort()).toEqual(SERVICES.map((s) => s.name).sort());
    // The published port is the listener's.
    const listener = (docker.resources as Json[]).find((r) => typeOf(r) === 'Listener')!;
    expect(listener.address.socket_address.port_value).toBe(10000);
  });

  test('front-proxy.yaml is xds/front-proxy.yaml with the control-plane container as the xDS cluster', () => {
    const docker = parse(dockerBootstrapText) as Json;
    const native = parse(read(path.join(EXAMPLE, 'xds', 'front-proxy.yaml'))) as Json;
    expect(normaliseBootstrap(docker, { address: 'control-plane', port_value: 18000 }))
      .toEqual(normaliseBootstrap(native, { address: '127.0.0.1', port_value: 18000 }));
  });

  test('both validate: the bootstrap as the proxy loads it, the resources as the control plane parses them', () => {
    const loaded = loadBootstrapText(dockerBootstrapText);
    expect(loaded.bootstrap.dynamicResources?.adsClusterName).toBe('xds_cluster');
    expect(loaded.bootstrap.admin).toBeNull();
    const set = parseResourcesText(dockerResourcesText);
    if (set instanceof ConfigError) throw new Error(`docker/resources.yaml rejected:\n${set.message}`);
    expect(checkResourceSet(set)).toEqual([]);
    expect(set.versionInfo).toBe('1');
    expect([...set.base.values()].reduce((n, byName) => n + byName.size, 0)).toBe(6);
  });
});
