import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { ExtMirrorPolicy } from '../../src/config/model';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { extRoute, extBootstrap } from '../harness/mirror-ext';
import { hcmOf } from '../harness/model';

// The trust fields from config to model: internal_address_config and internal_only_headers
// (Envoy's), allowed_clusters on a cluster_header mirror target (sidemirror's).

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const POLICY0 = `${HCM}.route_config.virtual_hosts[0].routes[0].typed_per_filter_config["sidemirror.filters.http.mirror"].policies[0]`;

function doc(hcm: Json = {}, rc: Json = {}): string {
  return bootstrap({
    listeners: [listener({ ...routeConfig([route('/', 'primary')]), ...rc }, { hcm })],
    clusters: [cluster('primary', [8081])],
  });
}

function extDoc(policy: Json): string {
  return extBootstrap({ routes: [extRoute('/', 'primary', [policy])], clusters: [cluster('primary', [8081]), cluster('shadow-a', [8082])] });
}

function issuesOf(text: string): readonly ConfigIssue[] {
  try {
    loadBootstrapText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

const hcmModel = (text: string) => hcmOf(loadBootstrapText(text).bootstrap.listeners[0]!.filterChains[0]);

describe('internal_address_config', () => {
  test('unset: null (no address is internal); present and empty: no ranges (the built-in list)', () => {
    expect(hcmModel(doc()).internalAddressConfig).toBeNull();
    expect(hcmModel(doc({ internal_address_config: {} })).internalAddressConfig).toEqual({ cidrRanges: [] });
  });

  test('cidr_ranges reach the model; an unset prefix_len is 0, as in Envoy', () => {
    const m = hcmModel(doc({ internal_address_config: { cidr_ranges: [{ address_prefix: '127.0.0.0', prefix_len: 8 }, { address_prefix: '::1' }] } }));
    expect(m.internalAddressConfig).toEqual({ cidrRanges: [{ addressPrefix: '127.0.0.0', prefixLen: 8 }, { addressPrefix: '::1', prefixLen: 0 }] });
  });

  test('every bad range is reported with its path', () => {
    const issues = issuesOf(doc({ internal_address_config: { cidr_ranges: [{ address_prefix: 'localhost', prefix_len: 8 }, { address_prefix: '10.0.0.0', prefix_len: 33 }, { address_prefix: 'fd00::', prefix_len: 129 }] } }));
    expect(issues.map((i) => i.path)).toEqual([
      `${HCM}.internal_address_config.cidr_ranges[0].address_prefix`,
      `${HCM}.internal_address_config.cidr_ranges[1].prefix_len`,
      `${HCM}.internal_address_config.cidr_ranges[2].prefix_len`,
    ]);
    expect(issues[1]!.message).toMatch(/33 is longer than an IPv4 address/);
  });

  test('unix_sockets is refused: listeners are TCP only', () => {
    const issues = issuesOf(doc({ internal_address_config: { unix_sockets: true } }));
    expect(issues).toEqual([{ path: `${HCM}.internal_address_config.unix_sockets`, message: expect.stringMatching(/not supported by sidemirror/) }]);
  });
});

describe('internal_only_headers', () => {
  test('lowercased into the route configuration', () => {
    expect(hcmModel(doc({}, { internal_only_headers: ['X-Mirror-Cluster', 'x-debug'] })).routeConfig!.internalOnlyHeaders).toEqual(['x-mirror-cluster', 'x-debug']);
  });

  test('Host, pseudo-headers and non-token names are refused by index', () => {
    const issues = issuesOf(doc({}, { internal_only_headers: ['host', ':path', 'bad name', 'ok'] }));
    expect(issues.map((i) => i.path)).toEqual([0, 1, 2].map((i) => `${HCM}.route_config.internal_only_headers[${i}]`));
  });
});

describe('allowed_clusters on a cluster_header mirror target', () => {
  const target = (text: string) => (hcmOf(loadBootstrapText(text).bootstrap.listeners[0]!.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!
    .extMirrorPolicies.get('sidemirror.filters.http.mirror')![0] as ExtMirrorPolicy).target;

  test('names and prefixes reach the model', () => {
    expect(target(extDoc({ cluster_header: 'x-mirror-cluster', allowed_clusters: { names: ['shadow-a'], prefixes: ['canary-'] } })))
      .toEqual({ kind: 'cluster_header', header: 'x-mirror-cluster', allowed: { names: new Set(['shadow-a']), prefixes: ['canary-'] } });
  });

  test('a cluster_header target without allowed_clusters is refused', () => {
    const issues = issuesOf(extDoc({ cluster_header: 'x-mirror-cluster' }));
    expect(issues).toEqual([{ path: `${POLICY0}.allowed_clusters`, message: expect.stringMatching(/needs allowed_clusters/) }]);
  });

  test('an empty prefix (which would allow every cluster) is refused', () => {
    const issues = issuesOf(extDoc({ cluster_header: 'x-mirror-cluster', allowed_clusters: { prefixes: [''] } }));
    expect(issues.map((i) => i.path)).toEqual([`${POLICY0}.allowed_clusters.prefixes[0]`]);
  });

  test('allowed_clusters with another target is refused', () => {
    const issues = issuesOf(extDoc({ cluster: 'shadow-a', allowed_clusters: { names: ['shadow-a'] } }));
    expect(issues).toEqual([{ path: `${POLICY0}.allowed_clusters`, message: expect.stringMatching(/only meaningful with a cluster_header target/) }]);
  });
});
