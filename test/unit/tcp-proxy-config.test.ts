import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { Listener } from '../../src/config/model';
import { LISTENER_TYPE, CLUSTER_TYPE } from '../../src/config/resources';
import { checkResourceSet } from '../../src/control-plane/cache/consistency';
import { parseResourcesText } from '../../src/control-plane/resources-file';
import { pickCluster } from '../../src/tcp/tcp-proxy';
import { HCM_TYPE, bootstrap, cluster, listener, routeConfig } from '../harness/bootstrap';
import { tcpListener, tcpProxyFilter } from '../harness/tcp';

// The TCP proxy in config: what a chain's filters may be, TcpProxy's fields with Envoy's
// defaults, and every refusal by path.

type Json = Record<string, unknown>;
const TCP0 = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';

const doc = (fields: Json, chain: Json = {}): string =>
  bootstrap({ listeners: [{ ...tcpListener('tcp', 10000, fields), ...chain }], clusters: [cluster('c', [9000]), cluster('d', [9001])] });

function issuesOf(text: string): string[] {
  try {
    loadBootstrapText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i: ConfigIssue) => `${i.path}: ${i.message}`);
  }
  throw new Error('the configuration was accepted');
}

const firstChain = (text: string): Listener['filterChains'][number] => loadBootstrapText(text).bootstrap.listeners[0]!.filterChains[0]!;

describe('TcpProxy decoding', () => {
  test('a cluster, with Envoy\'s defaults: 1 h idle timeout, one connect attempt, no hashing, no duration limit', () => {
    const chain = firstChain(doc({ stat_prefix: 'db', cluster: 'c' }));
    expect(chain.kind).toBe('tcp_proxy');
    expect(chain.kind === 'tcp_proxy' && chain.tcpProxy).toEqual({
      statPrefix: 'db',
      cluster: { kind: 'cluster', name: 'c' },
      idleTimeoutMs: 3_600_000,
      maxConnectAttempts: 1,
      hashSourceIp: false,
      maxDownstreamConnectionDurationMs: 0,
    });
  });

  test('every supported field', () => {
    const chain = firstChain(doc({
      stat_prefix: 'db',
      weighted_clusters: { clusters: [{ name: 'c', weight: 1 }, { name: 'd', weight: 3 }] },
      idle_timeout: '0s',
      max_connect_attempts: 4,
      hash_policy: [{ source_ip: {} }],
      max_downstream_connection_duration: '90s',
    }));
    expect(chain.kind === 'tcp_proxy' && chain.tcpProxy).toEqual({
      statPrefix: 'db',
      cluster: { kind: 'weighted_clusters', clusters: [{ name: 'c', weight: 1 }, { name: 'd', weight: 3 }], totalWeight: 4 },
      idleTimeoutMs: 0,
      maxConnectAttempts: 4,
      hashSourceIp: true,
      maxDownstreamConnectionDurationMs: 90_000,
    });
  });

  test('Envoy\'s required fields and bounds, each by path, all at once', () => {
    expect(issuesOf(doc({ max_connect_attempts: 0, hash_policy: [{ source_ip: {} }, { source_ip: {} }], max_downstream_connection_duration: '0s' }))).toEqual([
      `${TCP0}.stat_prefix: stat_prefix is required`,
      `${TCP0}.max_connect_attempts: must be at least 1`,
      `${TCP0}.max_downstream_connection_duration: must be at least 1ms`,
      `${TCP0}: one of cluster or weighted_clusters is required`,
      `${TCP0}.hash_policy: at most one hash policy is allowed`,
    ]);
    expect(issuesOf(doc({ stat_prefix: 'x', weighted_clusters: { clusters: [{ name: '', weight: 0 }] } }))).toEqual([
      `${TCP0}.weighted_clusters.clusters[0].name: name is required`,
      `${TCP0}.weighted_clusters.clusters[0].weight: must be at least 1`,
    ]);
    expect(issuesOf(doc({ stat_prefix: 'x', weighted_clusters: {} }))).toEqual([`${TCP0}.weighted_clusters.clusters: at least one cluster is required`]);
  });

  test('access_log is refused until TCP access logs are wired; fields sidemirror lacks are refused by name', () => {
    expect(issuesOf(doc({ stat_prefix: 'x', cluster: 'c', access_log: [{ name: 'envoy.access_loggers.stdout' }] })))
      .toEqual([`${TCP0}.access_log: TCP proxy access logs are not supported yet`]);
    expect(issuesOf(doc({
      stat_prefix: 'x',
      cluster: 'c',
      tunneling_config: { hostname: 'h:443' },
      on_demand: {},
      metadata_match: {},
      access_log_options: {},
      hash_policy: [{ filter_state: { key: 'k' } }],
    })).sort()).toEqual([
      `${TCP0}.access_log_options: not supported by sidemirror`,
      `${TCP0}.hash_policy[0].filter_state: not supported by sidemirror`,
      `${TCP0}.hash_policy[0]: a policy (source_ip) is required`,
      `${TCP0}.metadata_match: not supported by sidemirror`,
      `${TCP0}.on_demand: not supported by sidemirror`,
      `${TCP0}.tunneling_config: not supported by sidemirror`,
    ]);
  });
});

describe('a filter chain\'s network filters', () => {
  const filters = (list: Json[]): string => doc({}, { filter_chains: [{ filters: list }] });
  const hcm = (listener(routeConfig([])).filter_chains as Json[])[0]!.filters as Json[];

  test('a protocol filter before the TCP proxy (mysql_proxy, postgres_proxy…) is refused by path', () => {
    const mysql = { name: 'envoy.filters.network.mysql_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.mysql_proxy.v3.MySQLProxy', stat_prefix: 'm' } };
    expect(issuesOf(filters([mysql, tcpProxyFilter({ stat_prefix: 'x', cluster: 'c' })]))).toEqual([
      'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type: unknown type "type.googleapis.com/envoy.extensions.filters.network.mysql_proxy.v3.MySQLProxy"',
    ]);
  });

  test('a terminal filter must be the last one', () => {
    expect(issuesOf(filters([tcpProxyFilter({ stat_prefix: 'x', cluster: 'c' }), ...hcm]))).toEqual([
      'static_resources.listeners[0].filter_chains[0].filters[0]: envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy is a terminal filter: it must be the last filter of its chain',
    ]);
  });

  test('a known message that is no network filter is refused', () => {
    const router = { name: 'r', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
    expect(issuesOf(filters([router]))).toEqual([
      'static_resources.listeners[0].filter_chains[0].filters[0].typed_config: network filter "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" is not supported by sidemirror; '
        + `only ${HCM_TYPE.slice('type.googleapis.com/'.length)} and envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy are`,
    ]);
  });

  test('a chain needs a terminal filter', () => {
    expect(issuesOf(filters([]))).toEqual([
      `static_resources.listeners[0].filter_chains[0].filters: a terminal network filter (${HCM_TYPE.slice('type.googleapis.com/'.length)} or envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy) is required`,
    ]);
  });

  test('HTTP and TCP chains on one listener', () => {
    const text = doc({}, {
      listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
      filter_chains: [
        { filter_chain_match: { transport_protocol: 'tls' }, filters: [tcpProxyFilter({ stat_prefix: 'passthrough', cluster: 'c' })] },
        { filter_chain_match: { transport_protocol: 'raw_buffer' }, filters: hcm },
      ],
    });
    expect(loadBootstrapText(text).bootstrap.listeners[0]!.filterChains.map((c) => c.kind)).toEqual(['tcp_proxy', 'http']);
  });
});

describe('weighted pick', () => {
  const spec = { kind: 'weighted_clusters', clusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 3 }], totalWeight: 4 } as const;

  test('each cluster takes the share of [0, 1) its weight gives it', () => {
    expect([0, 0.24, 0.25, 0.5, 0.99].map((r) => pickCluster(spec, () => r))).toEqual(['a', 'a', 'b', 'b', 'b']);
  });
});

describe('the control plane\'s consistency check', () => {
  test('a TCP proxy\'s clusters must exist in the snapshot', () => {
    const l = { '@type': LISTENER_TYPE, ...tcpListener('tcp', 10000, { stat_prefix: 'x', weighted_clusters: { clusters: [{ name: 'c', weight: 1 }, { name: 'gone', weight: 1 }] } }) };
    const set = parseResourcesText(JSON.stringify({ version_info: 'v1', resources: [l, { '@type': CLUSTER_TYPE, ...cluster('c', [9000]) }] }));
    if (set instanceof Error) throw set;
    expect(checkResourceSet(set)).toEqual([{
      path: 'resources[0].filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[1].name',
      message: 'listener "tcp" proxies TCP to cluster "gone", which does not exist',
    }]);
  });
});
