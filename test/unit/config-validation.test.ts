import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { ForwardAction } from '../../src/config/model';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { closedPort } from '../harness/upstream';
import { hcmOf as hcmModelOf } from '../harness/model';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const ROUTE0 = `${HCM}.route_config.virtual_hosts[0].routes[0].route`;

/** A valid bootstrap as a JSON tree, for a test to break one piece of. */
function base(): Json {
  return JSON.parse(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })]))],
    clusters: [cluster('primary', [8081]), cluster('mirror', [8082])],
  })) as Json;
}

const hcmOf = (b: Json): Json => b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config as Json;
const routeOf = (b: Json): Json => hcmOf(b).route_config.virtual_hosts[0].routes[0].route as Json;

/** The issues a document is rejected with (fails the test when it loads). */
function issuesOf(doc: Json | string): readonly ConfigIssue[] {
  try {
    loadBootstrapText(typeof doc === 'string' ? doc : JSON.stringify(doc));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

/** Exactly one issue, at exactly this path, whose message matches. */
function expectOneIssue(doc: Json | string, issuePath: string, message: RegExp): void {
  const issues = issuesOf(doc);
  expect(issues).toHaveLength(1);
  expect(issues[0]!.path).toBe(issuePath);
  expect(issues[0]!.message).toMatch(message);
}

describe('loadBootstrapText rejects with exact field paths', () => {
  test('the base document is valid', () => {
    expect(() => loadBootstrapText(JSON.stringify(base()))).not.toThrow();
  });

  test('a misspelled field inside the HCM typed_config, with a suggestion', () => {
    const b = base();
    const hcm = hcmOf(b);
    hcm.stat_prefx = hcm.stat_prefix;
    delete hcm.stat_prefix;
    expectOneIssue(b, `${HCM}.stat_prefx`, /unknown field "stat_prefx".*did you mean "stat_prefix"/);
  });

  test('a string where a port number belongs', () => {
    const b = base();
    b.static_resources.listeners[0].address.socket_address.port_value = 'abc';
    expectOneIssue(b, 'static_resources.listeners[0].address.socket_address.port_value', /expected uint32.*"abc"/);
  });

  test('a number where a duration string belongs', () => {
    const b = base();
    routeOf(b).timeout = 5;
    expectOneIssue(b, `${ROUTE0}.timeout`, /duration/);
  });

  test('an unknown enum value', () => {
    const b = base();
    b.static_resources.clusters[0].lb_policy = 'FASTEST';
    expectOneIssue(b, 'static_resources.clusters[0].lb_policy', /unknown value "FASTEST".*ROUND_ROBIN/);
  });

  test('enum names in lower case are read as Envoy reads them (case-insensitive enum parsing)', () => {
    const b = base();
    b.static_resources.clusters[0].lb_policy = 'round_robin';
    expect(loadBootstrapText(JSON.stringify(b)).bootstrap.clusters[0]!.lbPolicy).toBe('ROUND_ROBIN');
    b.static_resources.clusters[0].lb_policy = 'fastest';
    expectOneIssue(b, 'static_resources.clusters[0].lb_policy', /unknown value "fastest"/);
  });

  test('a mirror policy with both cluster and cluster_header', () => {
    const b = base();
    routeOf(b).request_mirror_policies = [{ cluster: 'mirror', cluster_header: 'x-mirror' }];
    expectOneIssue(b, `${ROUTE0}.request_mirror_policies[0]`, /only one of cluster or cluster_header/);
  });

  test('a mirror policy with neither cluster nor cluster_header', () => {
    const b = base();
    routeOf(b).request_mirror_policies = [{ runtime_fraction: { default_value: { numerator: 50 } } }];
    expectOneIssue(b, `${ROUTE0}.request_mirror_policies[0]`, /exactly one of cluster or cluster_header/);
  });

  test('a route to an undefined cluster', () => {
    const b = base();
    routeOf(b).cluster = 'nowhere';
    expectOneIssue(b, `${ROUTE0}.cluster`, /unknown cluster "nowhere"/);
  });

  test('a mirror to an undefined cluster', () => {
    const b = base();
    routeOf(b).request_mirror_policies = [{ cluster: 'mirror' }, { cluster: 'ghost' }];
    expectOneIssue(b, `${ROUTE0}.request_mirror_policies[1].cluster`, /unknown cluster "ghost"/);
  });

  test('duplicate cluster names', () => {
    const b = base();
    b.static_resources.clusters.push(cluster('primary', [8083]));
    expectOneIssue(b, 'static_resources.clusters[2]', /duplicate cluster "primary"/);
  });

  test('a STATIC cluster with a hostname', () => {
    const b = base();
    b.static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address = 'mirror.internal';
    expectOneIssue(b, 'static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address',
      /"mirror.internal" is not an IP address/);
  });

  test('an unknown @type in typed_config', () => {
    const b = base();
    hcmOf(b)['@type'] = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr';
    expectOneIssue(b, `${HCM}.@type`, /unknown type/);
  });

  test('several errors in one file are reported at once', () => {
    const b = base();
    const hcm = hcmOf(b);
    hcm.stat_prefx = 'x';
    b.static_resources.listeners[0].address.socket_address.port_value = 'abc';
    b.static_resources.clusters[0].lb_policy = 'FASTEST';
    b.static_resources.clusters[1].connect_timeout = 1;
    routeOf(b).timeout = '5 seconds';
    const issues = issuesOf(b);
    expect(issues).toHaveLength(5);
    expect(issues.map((i) => i.path).sort()).toEqual([
      `${HCM}.stat_prefx`,
      `${ROUTE0}.timeout`,
      'static_resources.clusters[0].lb_policy',
      'static_resources.clusters[1].connect_timeout',
      'static_resources.listeners[0].address.socket_address.port_value',
    ].sort());
  });

  test('several semantic errors are reported at once too', () => {
    const b = base();
    routeOf(b).cluster = 'nowhere';
    routeOf(b).request_mirror_policies = [{ cluster: 'ghost' }];
    b.static_resources.clusters.push(cluster('mirror', [8084]));
    const issues = issuesOf(b);
    expect(issues).toHaveLength(3);
    expect(issues.map((i) => i.path).sort()).toEqual([
      `${ROUTE0}.cluster`,
      `${ROUTE0}.request_mirror_policies[0].cluster`,
      'static_resources.clusters[2]',
    ].sort());
  });

  test('a YAML syntax error is reported with its line', () => {
    const text = 'static_resources:\n  clusters:\n  - name: a\n    type: STATIC: x\n  - name: b\n';
    const issues = issuesOf(text);
    expect(issues.length).toBeGreaterThanOrEqual(1);
    expect(issues[0]!.path).toBe('');
    expect(issues[0]!.message).toMatch(/\(line 4, column 11\)/);
  });

  test('a duplicate YAML key is a syntax error with its line', () => {
    const issues = issuesOf('node:\n  id: a\n  id: b\n');
    expect(issues[0]!.message).toMatch(/unique.*\(line 3, column 3\)/);
  });
});

describe('loadBootstrapText accepts what Envoy accepts', () => {
  test('traffic_direction on a listener, in either case', () => {
    const b = base();
    (b.static_resources.listeners[0] as Record<string, unknown>).traffic_direction = 'outbound';
    expect(loadBootstrapText(JSON.stringify(b)).bootstrap.listeners[0]!.trafficDirection).toBe('OUTBOUND');
  });

  test('camelCase field names (statPrefix, portValue, lbPolicy…)', () => {
    const yaml = `
staticResources:
  listeners:
  - name: in
    address: { socketAddress: { address: 127.0.0.1, portValue: 10000 } }
    filterChains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typedConfig:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          statPrefix: camel_http
          routeConfig:
            virtualHosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: c, requestMirrorPolicies: [{ clusterHeader: x-mirror }] }
          httpFilters:
          - name: envoy.filters.http.router
            typedConfig: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: c
    connectTimeout: 0.5s
    lbPolicy: LEAST_REQUEST
    loadAssignment:
      clusterName: c
      endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: 127.0.0.1, portValue: 8080 } } } }] }]
`;
    const { bootstrap: b } = loadBootstrapText(yaml);
    expect(b.listeners[0]!.address).toEqual({ host: '127.0.0.1', port: 10000 });
    expect(hcmModelOf(b.listeners[0]!.filterChains[0]).statPrefix).toBe('camel_http');
    expect(b.clusters[0]!.lbPolicy).toBe('LEAST_REQUEST');
    expect(b.clusters[0]!.connectTimeoutMs).toBe(500);
    expect(b.clusters[0]!.loadAssignment!.endpoints[0]!.address.port).toBe(8080);
    const action = hcmModelOf(b.listeners[0]!.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!.action as ForwardAction;
    expect(action.mirrorPolicies[0]!.clusterHeader).toBe('x-mirror');
  });

  test('durations and wrapper values reach the decoded model', () => {
    const b = base();
    routeOf(b).timeout = '0.25s';
    routeOf(b).request_mirror_policies = [{ cluster: 'mirror', disable_shadow_host_suffix_append: true }];
    const hcm = hcmOf(b);
    hcm.use_remote_address = true;
    hcm.generate_request_id = false;
    hcm.route_config.validate_clusters = false;
    b.static_resources.listeners[0].per_connection_buffer_limit_bytes = 32768;
    const c = b.static_resources.clusters[0];
    c.connect_timeout = '1.5s';
    c.circuit_breakers = { thresholds: [{ max_requests: 7 }] };
    c.load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight = 3;
    const { bootstrap: m } = loadBootstrapText(JSON.stringify(b));
    const l = m.listeners[0]!;
    const action = hcmModelOf(l.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!.action as ForwardAction;
    expect(action.timeoutMs).toBe(250);
    expect(action.mirrorPolicies[0]!.disableShadowHostSuffixAppend).toBe(true);
    expect(hcmModelOf(l.filterChains[0]).useRemoteAddress).toBe(true);
    expect(hcmModelOf(l.filterChains[0]).generateRequestId).toBe(false);
    expect(hcmModelOf(l.filterChains[0]).routeConfig!.validateClusters).toBe(false);
    expect(l.perConnectionBufferLimitBytes).toBe(32768);
    expect(m.clusters[0]!.connectTimeoutMs).toBe(1500);
    expect(m.clusters[0]!.circuitBreakers.maxRequests).toBe(7);
    expect(m.clusters[0]!.loadAssignment!.endpoints[0]!.weight).toBe(3);
  });

  test('validate_clusters: false lets a route name a cluster that does not exist', () => {
    const b = base();
    hcmOf(b).route_config.validate_clusters = false;
    routeOf(b).cluster = 'later';
    expect(() => loadBootstrapText(JSON.stringify(b))).not.toThrow();
  });
});

describe('the CLI', () => {
  const CLI = path.resolve(__dirname, '..', '..', 'dist', 'src', 'cli.js');
  let dir: string;

  beforeAll(() => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-cli-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function writeConfig(name: string, doc: Json): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, JSON.stringify(doc, null, 2));
    return file;
  }

  /** Runs the CLI to completion (killed after 10 s), collecting its output. */
  function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  test('validate: a good file exits 0 and prints OK', async () => {
    const file = writeConfig('good.yaml', base());
    const r = await run(['validate', '-c', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/OK/);
  });

  test('validate: a bad file exits non-zero and prints every error with its path', async () => {
    const b = base();
    hcmOf(b).stat_prefx = 'x';
    b.static_resources.clusters[0].lb_policy = 'FASTEST';
    const file = writeConfig('bad.yaml', b);
    const r = await run(['validate', '-c', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${HCM}.stat_prefx: unknown field "stat_prefx"`);
    expect(r.stderr).toContain('static_resources.clusters[0].lb_policy: unknown value "FASTEST"');
    expect(r.stdout).not.toMatch(/OK/);
  });

  test('proxy: a bad file exits non-zero without listening', async () => {
    const port = await closedPort();
    const b = base();
    b.static_resources.listeners[0].address.socket_address.port_value = port;
    routeOf(b).cluster = 'nowhere';
    const file = writeConfig('bad-proxy.yaml', b);
    const r = await run(['proxy', '-c', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${ROUTE0}.cluster: unknown cluster "nowhere"`);
    const connected = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    expect(connected).toBe(false);
  });
});
