import type { HttpConnectionManager, InternalAddressConfig } from '../../src/config/model';
import { type HeaderMap, type RequestTrust, mutateRequestHeaders, xffAddress } from '../../src/http/headers';
import { canonicalAddress, internalAddressMatcher } from '../../src/http/internal-address';

// Envoy's internal/external decision and the header rules that follow from it
// (ConnectionManagerUtility::mutateRequestHeaders and cleanInternalHeaders), as a table over the
// pure function. NODE stands in for Envoy's local_info address, appended in place of a loopback peer.

const NODE = '192.0.2.10';

type Hcm = Pick<HttpConnectionManager, 'useRemoteAddress' | 'xffNumTrustedHops' | 'skipXffAppend' | 'generateRequestId' | 'preserveExternalRequestId' | 'via'>;
const DEFAULTS: Hcm = { useRemoteAddress: false, xffNumTrustedHops: 0, skipXffAppend: false, generateRequestId: true, preserveExternalRequestId: false, via: '' };

interface Case {
  readonly hcm?: Partial<Hcm>;
  readonly internalAddressConfig?: InternalAddressConfig | null;
  readonly peer?: string;
  readonly headers?: HeaderMap;
  readonly internalOnly?: readonly string[];
}

function run(c: Case): { headers: HeaderMap; trust: RequestTrust } {
  const headers: HeaderMap = { host: 'svc', ...c.headers };
  const hcm = { ...DEFAULTS, ...c.hcm } as HttpConnectionManager;
  const isInternal = internalAddressMatcher(c.internalAddressConfig === undefined ? null : c.internalAddressConfig);
  const trust = mutateRequestHeaders(headers, hcm, { address: c.peer ?? '127.0.0.1', scheme: 'http' }, { isInternal, nodeAddress: NODE }, c.internalOnly ?? []);
  return { headers, trust };
}

const LOOPBACK_INTERNAL: InternalAddressConfig = { cidrRanges: [{ addressPrefix: '127.0.0.0', prefixLen: 8 }] };
const BUILT_IN: InternalAddressConfig = { cidrRanges: [] };
const ROUTER_HINTS = { 'x-envoy-retry-on': '5xx', 'x-envoy-max-retries': '9', 'x-envoy-upstream-rq-timeout-ms': '1', 'x-envoy-force-trace': '1', 'x-envoy-hedge-on-per-try-timeout': 'true' };

describe('which requests are internal', () => {
  test.each<[string, Case, boolean]>([
    // Envoy >= 1.33: without internal_address_config no address is internal, loopback included.
    ['use_remote_address, loopback peer, no internal_address_config', { hcm: { useRemoteAddress: true } }, false],
    ['use_remote_address, loopback peer inside cidr_ranges', { hcm: { useRemoteAddress: true }, internalAddressConfig: LOOPBACK_INTERNAL }, true],
    ['use_remote_address, peer inside cidr_ranges but the request carries XFF', { hcm: { useRemoteAddress: true }, internalAddressConfig: LOOPBACK_INTERNAL, headers: { 'x-forwarded-for': '127.0.0.1' } }, false],
    ['use_remote_address, peer outside cidr_ranges', { hcm: { useRemoteAddress: true }, internalAddressConfig: LOOPBACK_INTERNAL, peer: '10.1.1.1' }, false],
    ['use_remote_address, xff_num_trusted_hops 1, no XFF: the peer decides', { hcm: { useRemoteAddress: true, xffNumTrustedHops: 1 }, internalAddressConfig: LOOPBACK_INTERNAL }, true],
    ['use_remote_address, xff_num_trusted_hops 1, XFF present: never internal', { hcm: { useRemoteAddress: true, xffNumTrustedHops: 1 }, internalAddressConfig: LOOPBACK_INTERNAL, headers: { 'x-forwarded-for': '127.0.0.1' } }, false],
    ['no use_remote_address, no XFF: external even from an internal peer', { internalAddressConfig: LOOPBACK_INTERNAL }, false],
    ['no use_remote_address, XFF with one internal address', { internalAddressConfig: BUILT_IN, headers: { 'x-forwarded-for': '10.0.0.7' } }, true],
    ['no use_remote_address, XFF with two addresses', { internalAddressConfig: BUILT_IN, headers: { 'x-forwarded-for': '10.0.0.6, 10.0.0.7' } }, false],
    ['no use_remote_address, two XFF lines count as two addresses', { internalAddressConfig: BUILT_IN, headers: { 'x-forwarded-for': ['10.0.0.6', '10.0.0.7'] } }, false],
    ['no use_remote_address, xff_num_trusted_hops 1: never internal', { hcm: { xffNumTrustedHops: 1 }, internalAddressConfig: BUILT_IN, headers: { 'x-forwarded-for': '10.0.0.6,10.0.0.7' } }, false],
    ['no use_remote_address, XFF internal but no internal_address_config', { headers: { 'x-forwarded-for': '10.0.0.7' } }, false],
  ])('%s', (_name, c, internal) => {
    const { headers, trust } = run(c);
    expect(trust.internal).toBe(internal);
    expect(headers['x-envoy-internal']).toBe(internal ? 'true' : undefined);
  });

  test.each([
    ['10.255.0.1', true], ['172.16.0.1', true], ['172.31.255.255', true], ['172.32.0.1', false], ['192.168.9.9', true],
    ['127.0.0.1', true], ['127.0.0.2', false], ['::1', true], ['fd12::1', true], ['fc00::1', false], ['8.8.8.8', false],
    ['::ffff:10.0.0.1', false],
  ])("internal_address_config without cidr_ranges (Envoy's built-in list): %s → %s", (address, internal) => {
    expect(internalAddressMatcher(BUILT_IN)(address)).toBe(internal);
  });

  test('cidr_ranges: only the ranges given, per address family', () => {
    const m = internalAddressMatcher({ cidrRanges: [{ addressPrefix: '10.1.2.3', prefixLen: 16 }, { addressPrefix: '2001:db8::', prefixLen: 32 }] });
    expect([m('10.1.200.1'), m('10.2.0.1'), m('192.168.0.1'), m('2001:db8:ff::1'), m('2001:db9::1'), m('::ffff:10.1.0.1'), m('not-an-ip')])
      .toEqual([true, false, false, true, false, false, false]);
  });

  test('no internal_address_config: nothing is internal', () => {
    const m = internalAddressMatcher(null);
    expect(['127.0.0.1', '10.0.0.1', '::1'].map(m)).toEqual([false, false, false]);
  });
});

describe('headers on external requests', () => {
  test("a client's x-envoy-internal and router hints are removed; edge-only ones stay on a non-edge request", () => {
    const { headers, trust } = run({ headers: { 'x-envoy-internal': 'true', ...ROUTER_HINTS, 'x-envoy-decorator-operation': 'op', 'x-envoy-external-address': '9.9.9.9' } });
    expect(trust).toMatchObject({ internal: false, edge: false });
    for (const h of ['x-envoy-internal', ...Object.keys(ROUTER_HINTS)]) expect(headers[h]).toBeUndefined();
    expect(headers['x-envoy-decorator-operation']).toBe('op');
    // Only the edge proxy writes it; behind it, what the edge wrote is passed on.
    expect(headers['x-envoy-external-address']).toBe('9.9.9.9');
  });

  test('internal_only_headers are removed from external requests and kept on internal ones', () => {
    const ext = run({ hcm: { useRemoteAddress: true }, headers: { 'x-mirror-cluster': 'm', 'x-other': 'kept' }, internalOnly: ['x-mirror-cluster'] });
    expect(ext.headers['x-mirror-cluster']).toBeUndefined();
    expect(ext.headers['x-other']).toBe('kept');
    const int = run({ hcm: { useRemoteAddress: true }, internalAddressConfig: LOOPBACK_INTERNAL, headers: { 'x-mirror-cluster': 'm', ...ROUTER_HINTS }, internalOnly: ['x-mirror-cluster'] });
    expect(int.headers['x-mirror-cluster']).toBe('m');
    expect(int.headers['x-envoy-retry-on']).toBe('5xx');
  });

  test('edge request: edge-only headers removed, x-envoy-external-address set, x-request-id replaced', () => {
    const { headers, trust } = run({ hcm: { useRemoteAddress: true }, peer: '203.0.113.5',
      headers: { 'x-envoy-decorator-operation': 'op', 'x-envoy-downstream-service-cluster': 'c', 'x-envoy-external-address': '9.9.9.9', 'x-request-id': 'client-id' } });
    expect(trust).toEqual({ internal: false, edge: true, remoteAddress: '203.0.113.5' });
    expect(headers['x-envoy-decorator-operation']).toBeUndefined();
    expect(headers['x-envoy-downstream-service-cluster']).toBeUndefined();
    expect(headers['x-envoy-external-address']).toBe('203.0.113.5');
    expect(headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('preserve_external_request_id keeps an edge request id; an empty one is replaced', () => {
    expect(run({ hcm: { useRemoteAddress: true, preserveExternalRequestId: true }, headers: { 'x-request-id': 'client-id' } }).headers['x-request-id']).toBe('client-id');
    expect(run({ headers: { 'x-request-id': '' } }).headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(run({ headers: { 'x-request-id': 'kept' } }).headers['x-request-id']).toBe('kept');
  });
});

describe('x-forwarded-for, x-forwarded-proto and x-envoy-external-address', () => {
  test.each<[string, Case, string | undefined, string | undefined, string]>([
    // name, case, XFF sent upstream, x-envoy-external-address, trusted client address
    ['no use_remote_address: XFF untouched, no external address', { headers: { 'x-forwarded-for': '198.51.100.1' } }, '198.51.100.1', undefined, '198.51.100.1'],
    ['use_remote_address, loopback peer: the node address is appended', { hcm: { useRemoteAddress: true } }, NODE, '127.0.0.1', '127.0.0.1'],
    ['use_remote_address, other peer: the peer is appended', { hcm: { useRemoteAddress: true }, peer: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.1' } }, '198.51.100.1,127.0.0.2', '127.0.0.2', '127.0.0.2'],
    ['xff_num_trusted_hops 1: the client is the last XFF entry', { hcm: { useRemoteAddress: true, xffNumTrustedHops: 1 }, peer: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.7, 198.51.100.1' } },
      '198.51.100.7, 198.51.100.1,127.0.0.2', '198.51.100.1', '198.51.100.1'],
    ['xff_num_trusted_hops 2: one further back', { hcm: { useRemoteAddress: true, xffNumTrustedHops: 2 }, peer: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.7, 198.51.100.1' } },
      '198.51.100.7, 198.51.100.1,127.0.0.2', '198.51.100.7', '198.51.100.7'],
    ['xff_num_trusted_hops beyond XFF: the peer', { hcm: { useRemoteAddress: true, xffNumTrustedHops: 3 }, peer: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.1' } },
      '198.51.100.1,127.0.0.2', '127.0.0.2', '127.0.0.2'],
    ['an IPv6 client printed as Envoy prints it', { hcm: { useRemoteAddress: true, xffNumTrustedHops: 1 }, peer: '127.0.0.2', headers: { 'x-forwarded-for': '2001:DB8:0:0::5' } },
      '2001:DB8:0:0::5,127.0.0.2', '2001:db8::5', '2001:db8::5'],
    ['skip_xff_append: nothing appended', { hcm: { useRemoteAddress: true, skipXffAppend: true }, headers: { 'x-forwarded-for': '198.51.100.1' } }, '198.51.100.1', '127.0.0.1', '127.0.0.1'],
    ['internal: no external address', { hcm: { useRemoteAddress: true }, internalAddressConfig: LOOPBACK_INTERNAL }, NODE, undefined, '127.0.0.1'],
  ])('%s', (_name, c, xff, external, remote) => {
    const { headers, trust } = run(c);
    expect(headers['x-forwarded-for']).toBe(xff);
    expect(headers['x-envoy-external-address']).toBe(external);
    expect(trust.remoteAddress).toBe(remote);
  });

  test("x-forwarded-proto: a peer's value is replaced unless XFF hops are trusted; set when absent", () => {
    expect(run({ hcm: { useRemoteAddress: true }, headers: { 'x-forwarded-proto': 'https' } }).headers['x-forwarded-proto']).toBe('http');
    expect(run({ hcm: { useRemoteAddress: true, xffNumTrustedHops: 1 }, headers: { 'x-forwarded-proto': 'https' } }).headers['x-forwarded-proto']).toBe('https');
    expect(run({ headers: { 'x-forwarded-proto': 'https' } }).headers['x-forwarded-proto']).toBe('https');
    expect(run({}).headers['x-forwarded-proto']).toBe('http');
  });

  test.each<[string | string[] | undefined, number, string | null, boolean]>([
    [undefined, 0, null, false],
    ['', 0, null, false],
    [' 198.51.100.1 ', 0, '198.51.100.1', true],
    ['198.51.100.1,198.51.100.2', 0, '198.51.100.2', false],
    ['198.51.100.1,198.51.100.2', 1, '198.51.100.1', false],
    ['198.51.100.1,198.51.100.2', 2, null, false],
    ['198.51.100.1,', 0, null, false],
    ['[::1]', 0, null, false],
    ['198.51.100.1:80', 0, null, false],
    [['198.51.100.1', '198.51.100.2'], 0, '198.51.100.2', false],
  ])("Envoy's getLastAddressFromXFF: %j skipping %d → %s (single: %s)", (xff, skip, address, single) => {
    expect(xffAddress(xff === undefined ? {} : { 'x-forwarded-for': xff }, skip)).toEqual({ address, single });
  });

  test('canonicalAddress compresses and lowercases IPv6 only', () => {
    expect([canonicalAddress('2001:DB8:0:0:0:0:0:1'), canonicalAddress('10.0.0.1')]).toEqual(['2001:db8::1', '10.0.0.1']);
  });
});
