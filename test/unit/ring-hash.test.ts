import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { Cluster, ForwardAction } from '../../src/config/model';
import { cookieValue, queryParameter, requestHashKey } from '../../src/http/hash-policy';
import { murmurHash2, xxHash64, xxHash64Chain } from '../../src/upstream/hash64';
import type { Host } from '../../src/upstream/host';
import { DEFAULT_RING_HASH, HashRing, RingHashBalancer } from '../../src/upstream/load-balancer/ring-hash';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { hcmOf } from '../harness/model';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function host(addressPort: string, weight = 1): Host {
  const [address, port] = addressPort.split(':');
  return {
    address: address!, port: Number(port), addressPort, hostname: address!, weight, pool: null as never, tls: null, healthy: true, active: 0,
    counters: { rqTotal: 0, rqSuccess: 0, rqError: 0, rqTimeout: 0, cxTotal: 0, cxConnectFail: 0 }, outlier: null,
  };
}

const keys = (n: number): string[] => Array.from({ length: n }, (_, i) => `user-${i}`);

describe('xxHash64 (Envoy HashUtil::xxHash64)', () => {
  test.each([
    ['', 0xef46db3751d8e999n],
    ['a', 0xd24ec4f1a98c6e5bn],
    ['abc', 0x44bc2cf5ad770999n],
    ['Nobody inspects the spammish repetition', 0xfbcea83c8a378bf1n],
  ])('XXH64(%j) matches the reference vector', (input, expected) => {
    expect(xxHash64(input)).toBe(expected);
  });

  test('long inputs (the 32-byte stripe path) and bytes equal their UTF-8 string', () => {
    const long = 'the quick brown fox jumps over the lazy dog, twice over: ' + 'é€'.repeat(40);
    expect(xxHash64(Buffer.from(long, 'utf8'))).toBe(xxHash64(long));
    expect(xxHash64(long)).not.toBe(xxHash64(long + '.'));
  });

  test('a seed changes the hash; a chain seeds each value with the previous hash', () => {
    expect(xxHash64('abc', 1n)).not.toBe(xxHash64('abc'));
    expect(xxHash64Chain(['a', 'b'])).toBe(xxHash64('b', xxHash64('a')));
    expect(xxHash64Chain([])).toBe(xxHash64(''));
  });

  test('MurmurHash2 matches libstdc++ std::hash<std::string> for ""', () => {
    expect(murmurHash2('')).toBe(6142509188972423790n);
  });
});

describe('HashRing', () => {
  test('equal weights: each host gets ceil(minimum_ring_size / hosts) points', () => {
    const hosts = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'].map((a) => host(a));
    const ring = HashRing.build(hosts, { ...DEFAULT_RING_HASH, minimumRingSize: 1024 });
    expect(ring.size).toBe(3 * Math.ceil(1024 / 3));
    expect([...ring.pointsPerHost().values()]).toEqual([342, 342, 342]);
  });

  test('maximum_ring_size caps the ring', () => {
    const hosts = ['10.0.0.1:80', '10.0.0.2:80'].map((a) => host(a));
    expect(HashRing.build(hosts, { ...DEFAULT_RING_HASH, minimumRingSize: 1024, maximumRingSize: 64 }).size).toBe(64);
  });

  test('the same key always lands on the same host, also in a ring built again', () => {
    const hosts = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'].map((a) => host(a));
    const a = HashRing.build(hosts);
    const b = HashRing.build([...hosts]);
    for (const k of keys(500)) expect(b.choose(xxHash64(k))).toBe(a.choose(xxHash64(k)));
  });

  // Envoy's ring gives each host ceil(minimum_ring_size / hosts) points, so a host change also
  // trims the point lists of the others: a few more keys move than the ideal 1/n, but most stay.
  test('adding a host keeps most keys where they were; most movers go to the new host', () => {
    const before = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'].map((a) => host(a));
    const added = host('10.0.0.5:80');
    const r1 = HashRing.build(before);
    const r2 = HashRing.build([...before, added]);
    const all = keys(10_000);
    let moved = 0;
    let toNew = 0;
    for (const k of all) {
      const h = xxHash64(k);
      const now = r2.choose(h);
      if (r1.choose(h) !== now) {
        moved++;
        if (now === added) toNew++;
      }
    }
    // Ideal: 1/5 of the keys move; modulo hashing would move about 4/5.
    expect(moved / all.length).toBeGreaterThan(0.15);
    expect(moved / all.length).toBeLessThan(0.4);
    expect(toNew / moved).toBeGreaterThan(0.5);
  });

  test('removing a host keeps most of the other hosts\' keys in place', () => {
    const hosts = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'].map((a) => host(a));
    const r1 = HashRing.build(hosts);
    const r2 = HashRing.build(hosts.slice(0, 3));
    let others = 0;
    let kept = 0;
    for (const k of keys(10_000)) {
      const h = xxHash64(k);
      const was = r1.choose(h);
      if (was === hosts[3]) {
        expect(r2.choose(h)).not.toBe(hosts[3]);
        continue;
      }
      others++;
      if (r2.choose(h) === was) kept++;
    }
    expect(kept / others).toBeGreaterThan(0.8);
  });

  test('keys spread roughly in proportion to weight', () => {
    const hosts = [host('10.0.0.1:80', 1), host('10.0.0.2:80', 2), host('10.0.0.3:80', 3)];
    const ring = HashRing.build(hosts);
    // Envoy: the least-weighted host gets ceil(1/6 * 1024) = 171 points, the others in proportion.
    expect(hosts.map((h) => ring.pointsPerHost().get(h))).toEqual([171, 342, 513]);
    const counts = new Map<Host, number>();
    const n = 30_000;
    for (const k of keys(n)) {
      const h = ring.choose(xxHash64(k))!;
      counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    hosts.forEach((h, i) => {
      const share = (counts.get(h) ?? 0) / n;
      expect(Math.abs(share - (i + 1) / 6)).toBeLessThan(0.05);
    });
  });

  test('MURMUR_HASH_2 rings work too, and zero-weight hosts get no points', () => {
    const hosts = [host('10.0.0.1:80'), host('10.0.0.2:80'), host('10.0.0.3:80', 0)];
    const ring = HashRing.build(hosts, { ...DEFAULT_RING_HASH, hashFunction: 'MURMUR_HASH_2' });
    expect(ring.size).toBe(1024);
    expect(ring.pointsPerHost().has(hosts[2]!)).toBe(false);
    expect(HashRing.build([]).choose(1n)).toBeNull();
  });

  test('a key past the last point wraps to the first', () => {
    const hosts = [host('10.0.0.1:80'), host('10.0.0.2:80')];
    const ring = HashRing.build(hosts);
    expect(ring.choose((1n << 64n) - 1n)).toBe(ring.choose(0n));
  });
});

describe('RingHashBalancer', () => {
  test('a key picks consistently (bigint, string and number keys); none picks at random', () => {
    const hosts = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'].map((a) => host(a));
    const lb = new RingHashBalancer();
    const first = lb.pick(hosts, xxHash64('alice'));
    for (let i = 0; i < 20; i++) expect(lb.pick(hosts, xxHash64('alice'))).toBe(first);
    expect(lb.pick(hosts, 'alice')).toBe(first);
    expect(lb.pick(hosts, 42)).toBe(lb.pick(hosts, 42n));
    const seen = new Set<Host | null>();
    for (let i = 0; i < 200; i++) seen.add(lb.pick(hosts));
    expect(seen.size).toBe(3);
    expect(lb.pick([], 'alice')).toBeNull();
  });

  test('rebuilds when the host list changes', () => {
    const a = host('10.0.0.1:80');
    const b = host('10.0.0.2:80');
    const lb = new RingHashBalancer();
    for (const k of keys(50)) expect([a, b]).toContain(lb.pick([a, b], k));
    for (const k of keys(50)) expect(lb.pick([b], k)).toBe(b);
  });
});

describe('route hash_policy key (Envoy HashPolicyImpl::generateHash)', () => {
  const input = (headers: Record<string, string | string[]>, path = '/', sourceIp = '10.1.2.3') => ({
    headers, path, sourceIp, pseudo: (n: string) => (n === ':path' ? path : n === ':authority' ? 'example.com' : undefined),
  });

  test('header: the xxHash64 of the value; absent: no key', () => {
    const p = [{ kind: 'header', name: 'x-user', terminal: false }] as const;
    expect(requestHashKey(p, input({ 'x-user': 'alice' }))).toBe(xxHash64('alice'));
    expect(requestHashKey(p, input({}))).toBeNull();
    expect(requestHashKey([{ kind: 'header', name: ':authority', terminal: false }], input({}))).toBe(xxHash64('example.com'));
  });

  test('repeated header values hash the same in any order', () => {
    const p = [{ kind: 'header', name: 'x-k', terminal: false }] as const;
    expect(requestHashKey(p, input({ 'x-k': ['b', 'a'] }))).toBe(requestHashKey(p, input({ 'x-k': ['a', 'b'] })));
  });

  test('policies combine (rotate then xor); a terminal one with a key stops the rest', () => {
    const a = xxHash64('alice');
    const ip = xxHash64('10.1.2.3');
    const rotl1 = (h: bigint) => ((h << 1n) & ((1n << 64n) - 1n)) | (h >> 63n);
    const both = [{ kind: 'header', name: 'x-user', terminal: false }, { kind: 'source_ip', terminal: false }] as const;
    expect(requestHashKey(both, input({ 'x-user': 'alice' }))).toBe(rotl1(a) ^ ip);
    const terminal = [{ kind: 'header', name: 'x-user', terminal: true }, { kind: 'source_ip', terminal: false }] as const;
    expect(requestHashKey(terminal, input({ 'x-user': 'alice' }))).toBe(a);
    // The terminal policy yielded nothing: evaluation goes on.
    expect(requestHashKey(terminal, input({}))).toBe(ip);
  });

  test('cookie and query_parameter read existing values only', () => {
    expect(cookieValue('a=1; session="xyz"; b=2', 'session')).toBe('xyz');
    expect(cookieValue(['a=1', 'sid=9'], 'sid')).toBe('9');
    expect(cookieValue('a=1', 'sid')).toBeNull();
    expect(queryParameter('/p?x=1&user=bob&user=eve', 'user')).toBe('bob');
    expect(queryParameter('/p?flag&x=1', 'flag')).toBe('');
    expect(queryParameter('/p', 'user')).toBeNull();
    const p = [{ kind: 'cookie', name: 'sid', terminal: false }, { kind: 'query_parameter', name: 'u', terminal: false }] as const;
    expect(requestHashKey(p, input({ cookie: 'sid=9' }, '/x'))).toBe(xxHash64('9'));
    expect(requestHashKey(p, input({}, '/x?u=bob'))).toBe(xxHash64('bob'));
  });
});

// ── decoding ──────────────────────────────────────────────────────────────────────────────────

const CL = 'static_resources.clusters[0]';
const ROUTE0 = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route';

function doc(clusterExtra: Json = {}, action: Json = {}): Json {
  return JSON.parse(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary', action)]))],
    clusters: [cluster('primary', [8081], clusterExtra)],
  })) as Json;
}

function issuesOf(d: Json): readonly ConfigIssue[] {
  try {
    loadBootstrapText(JSON.stringify(d));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

const loadCluster = (d: Json): Cluster => loadBootstrapText(JSON.stringify(d)).bootstrap.clusters[0]!;
const HC = { timeout: '1s', interval: '5s', unhealthy_threshold: 2, healthy_threshold: 3, http_health_check: { path: '/healthz' } };

describe('decoding health_checks, ring_hash_lb_config and hash_policy', () => {
  test('a health check decodes with Envoy defaults filled in', () => {
    expect(loadCluster(doc({ health_checks: [HC] })).healthCheck).toEqual({
      timeoutMs: 1000, intervalMs: 5000, intervalJitterMs: 0, noTrafficIntervalMs: 60_000, unhealthyThreshold: 2, healthyThreshold: 3,
      http: { host: '', path: '/healthz', expectedStatuses: [[200, 201]], requestHeadersToAdd: [], requestHeadersToRemove: [] },
    });
    expect(loadCluster(doc()).healthCheck).toBeNull();
  });

  test.each([
    ['timeout', `${CL}.health_checks[0].timeout`, /timeout is required/],
    ['interval', `${CL}.health_checks[0].interval`, /interval is required/],
    ['unhealthy_threshold', `${CL}.health_checks[0].unhealthy_threshold`, /unhealthy_threshold is required/],
    ['healthy_threshold', `${CL}.health_checks[0].healthy_threshold`, /healthy_threshold is required/],
  ])('%s is required', (field, path, message) => {
    const hc: Json = { ...HC };
    delete hc[field];
    const issues = issuesOf(doc({ health_checks: [hc] }));
    expect(issues).toEqual([{ path, message: expect.stringMatching(message) }]);
  });

  test('other checkers, a missing path, bad status ranges and a second check are refused by path', () => {
    const { http_health_check: _, ...noHttp } = HC;
    expect(issuesOf(doc({ health_checks: [{ ...noHttp, tcp_health_check: {} }] }))).toEqual([
      { path: `${CL}.health_checks[0].tcp_health_check`, message: expect.stringMatching(/not supported \(only http_health_check is\)/) },
    ]);
    expect(issuesOf(doc({ health_checks: [{ ...HC, http_health_check: { host: 'x' } }] }))).toEqual([
      { path: `${CL}.health_checks[0].http_health_check.path`, message: 'path is required' },
    ]);
    expect(issuesOf(doc({ health_checks: [{ ...HC, http_health_check: { path: '/h', expected_statuses: [{ start: 200, end: 700 }] } }] }))).toEqual([
      { path: `${CL}.health_checks[0].http_health_check.expected_statuses[0]`, message: expect.stringMatching(/expecting end <= 600/) },
    ]);
    expect(issuesOf(doc({ health_checks: [HC, HC] }))).toEqual([
      { path: `${CL}.health_checks[1]`, message: expect.stringMatching(/only one health check/) },
    ]);
    expect(issuesOf(doc({ health_checks: [{ ...HC, interval: '0s' }] }))).toEqual([
      { path: `${CL}.health_checks[0].interval`, message: expect.stringMatching(/greater than 0s/) },
    ]);
  });

  test('RING_HASH is accepted with its config; MAGLEV is not', () => {
    expect(loadCluster(doc({ lb_policy: 'RING_HASH' })).ringHash).toEqual({ minimumRingSize: 1024, maximumRingSize: 8388608, hashFunction: 'XX_HASH' });
    expect(loadCluster(doc({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: 64, hash_function: 'MURMUR_HASH_2' } })).ringHash)
      .toEqual({ minimumRingSize: 64, maximumRingSize: 8388608, hashFunction: 'MURMUR_HASH_2' });
    expect(issuesOf(doc({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: 100, maximum_ring_size: 10 } }))).toEqual([
      { path: `${CL}.ring_hash_lb_config`, message: 'ring hash: minimum_ring_size (100) > maximum_ring_size (10)' },
    ]);
    expect(issuesOf(doc({ lb_policy: 'MAGLEV' }))).toEqual([{ path: `${CL}.lb_policy`, message: expect.stringMatching(/MAGLEV is not supported/) }]);
  });

  test('hash_policy decodes; cookie generation (ttl) and empty names are refused by path', () => {
    const d = doc({}, {
      hash_policy: [
        { header: { header_name: 'X-User' } },
        { cookie: { name: 'sid' }, terminal: true },
        { connection_properties: { source_ip: true } },
        { connection_properties: { source_ip: false } },
        { query_parameter: { name: 'u' } },
      ],
    });
    const action = hcmOf(loadBootstrapText(JSON.stringify(d)).bootstrap.listeners[0]!.filterChains[0]).routeConfig!.virtualHosts[0]!.routes[0]!.action as ForwardAction;
    expect(action.hashPolicy).toEqual([
      { kind: 'header', name: 'x-user', terminal: false },
      { kind: 'cookie', name: 'sid', terminal: true },
      { kind: 'source_ip', terminal: false },
      { kind: 'query_parameter', name: 'u', terminal: false },
    ]);
    expect(issuesOf(doc({}, { hash_policy: [{ cookie: { name: 'sid', ttl: '10s' } }] }))).toEqual([
      { path: `${ROUTE0}.hash_policy[0].cookie.ttl`, message: expect.stringMatching(/not supported/) },
    ]);
    expect(issuesOf(doc({}, { hash_policy: [{ header: {} }] }))).toEqual([
      { path: `${ROUTE0}.hash_policy[0].header.header_name`, message: 'header_name is required' },
    ]);
  });
});
