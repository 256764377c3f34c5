import { HookDirs } from '../../src/shadow/hook-dirs';
import * as path from 'node:path';
import { nodeAddress } from '../../src/http/internal-address';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type Json, mirrorHttpFilters, perRoute, stat } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Header-driven mirroring for trusted callers only, end to end: real upstreams, an in-process
// sidecar on 127.0.0.1, real HTTP clients. Internal or external is decided as Envoy decides it
// (use_remote_address, XFF, internal_address_config); internal_only_headers are gone from
// external requests before routing and mirroring read them; a cluster_header target of the
// mirror filter reaches only the clusters its allowed_clusters names.

const EXAMPLE_HOOKS = path.resolve(__dirname, '../../examples/hooks/compare-and-tag.ts');
/** The sidecar trusts loopback peers that send no XFF. */
const LOOPBACK_INTERNAL = { cidr_ranges: [{ address_prefix: '127.0.0.0', prefix_len: 8 }] };
const MIRROR_BY_HEADER = [{ cluster_header: 'x-mirror-cluster' }];

interface Rig {
  readonly p: TestProxy;
  readonly up: Record<string, Upstream>;
}

/**
 * Upstreams `primary`, `mirror` and `secret` (each answering with its name), and a sidecar with
 * one catch-all route to `primary`; `hcm` and `rc` extend the connection manager and route table.
 */
async function withSidecar(o: { hcm?: Json; rc?: Json; action?: Json; ext?: Json[] }, body: (r: Rig) => Promise<void>): Promise<void> {
  const up: Record<string, Upstream> = {};
  try {
    for (const name of ['primary', 'mirror', 'secret']) up[name] = await startUpstream({ name });
    const r = { ...route('/', 'primary', o.action ?? {}), ...(o.ext ? { typed_per_filter_config: perRoute(o.ext) } : {}) };
    const hcm = { ...(o.ext ? { http_filters: mirrorHttpFilters() } : {}), ...o.hcm };
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([r], {}, o.rc ?? {}), { hcm })],
      clusters: Object.entries(up).map(([n, u]) => cluster(n, [u.port])),
    }), { hookDirs: new HookDirs([path.dirname(EXAMPLE_HOOKS)]) });
    try {
      await body({ p, up });
    } finally {
      await p.stop();
    }
  } finally {
    for (const u of Object.values(up)) await u.close();
  }
}

/** Nothing reached `u`, not even after a pause for a late shadow. */
async function expectNothing(u: Upstream): Promise<void> {
  await sleep(200);
  expect(u.requests).toHaveLength(0);
}

describe("Envoy's request_mirror_policies with cluster_header, guarded by internal_only_headers", () => {
  const guarded = { hcm: { use_remote_address: true, internal_address_config: LOOPBACK_INTERNAL }, rc: { internal_only_headers: ['X-Mirror-Cluster'] }, action: { request_mirror_policies: MIRROR_BY_HEADER } };

  test('an internal caller (loopback peer, no XFF, inside internal_address_config) steers the mirror', () =>
    withSidecar(guarded, async ({ p, up }) => {
      const res = await fetchText(`${p.url}/in`, { headers: { 'x-mirror-cluster': 'mirror' } });
      expect(res.body).toBe('primary');
      const [shadow] = await up.mirror!.waitForRequests(1);
      expect(shadow!.url).toBe('/in');
      const primary = up.primary!.requests[0]!.headers;
      expect(primary['x-mirror-cluster']).toBe('mirror');
      expect(primary['x-envoy-internal']).toBe('true');
      expect(primary['x-envoy-external-address']).toBeUndefined();
    }));

  test('an external caller (same peer, but it sent XFF) cannot: the header is gone before the mirror policy reads it', () =>
    withSidecar(guarded, async ({ p, up }) => {
      const res = await fetchText(`${p.url}/out`, { headers: { 'x-mirror-cluster': 'secret', 'x-forwarded-for': '127.0.0.1', authorization: 'Bearer client-token' } });
      expect(res.body).toBe('primary');
      await expectNothing(up.secret!);
      expect(await stat(p, 'cluster.header:x-mirror-cluster.shadow.skipped.missing_header')).toBe(1);
      const primary = up.primary!.requests[0]!.headers;
      expect(primary['x-mirror-cluster']).toBeUndefined();
      expect(primary['x-envoy-internal']).toBeUndefined();
      expect(primary['x-envoy-external-address']).toBe('127.0.0.1');
    }));

  test('behind a trusted front proxy (no use_remote_address): a single internal XFF address makes the request internal', () =>
    withSidecar({ ...guarded, hcm: { internal_address_config: {} } }, async ({ p, up }) => {
      // As the front proxy would write it for an internal client; two entries (a client's own XFF kept) would not count.
      await fetchText(`${p.url}/via-front`, { headers: { 'x-mirror-cluster': 'mirror', 'x-forwarded-for': '10.0.0.5' } });
      await fetchText(`${p.url}/two-hops`, { headers: { 'x-mirror-cluster': 'mirror', 'x-forwarded-for': '203.0.113.1,10.0.0.5' } });
      const [shadow] = await up.mirror!.waitForRequests(1);
      await sleep(200);
      expect(up.mirror!.requests.map((r) => r.url)).toEqual(['/via-front']);
      expect(shadow!.headers['x-forwarded-for']).toMatch(/^10\.0\.0\.5,/);
      expect(up.primary!.requests.map((r) => r.headers['x-envoy-internal'])).toEqual(['true', undefined]);
    }));

  test('without internal_address_config nothing is internal (Envoy since 1.33): even a loopback caller is stripped', () =>
    withSidecar({ ...guarded, hcm: { use_remote_address: true } }, async ({ p, up }) => {
      await fetchText(`${p.url}/`, { headers: { 'x-mirror-cluster': 'mirror' } });
      await expectNothing(up.mirror!);
      expect(up.primary!.requests[0]!.headers['x-mirror-cluster']).toBeUndefined();
    }));

  test("internal_only_headers also bind the route's own cluster_header: an external caller cannot pick the primary", () =>
    withSidecar({ rc: { internal_only_headers: ['x-target'] }, action: { cluster: undefined, cluster_header: 'x-target' } }, async ({ p, up }) => {
      const res = await fetchText(`${p.url}/`, { headers: { 'x-target': 'secret' } });
      expect(res.status).toBe(503);
      expect(up.secret!.requests).toHaveLength(0);
    }));

  test("the sandbox's rule: no internal_only_headers, so Envoy's defaults let any caller's x-mirror-cluster steer the mirror", () =>
    withSidecar({ action: { request_mirror_policies: MIRROR_BY_HEADER } }, async ({ p, up }) => {
      await fetchText(`${p.url}/sandbox`, { headers: { 'x-mirror-cluster': 'mirror' } });
      const [shadow] = await up.mirror!.waitForRequests(1);
      expect(shadow!.url).toBe('/sandbox');
      // External (no XFF, use_remote_address off) but not an edge request: no internal marker, no XFF added.
      const primary = up.primary!.requests[0]!.headers;
      expect(primary['x-envoy-internal']).toBeUndefined();
      expect(primary['x-forwarded-for']).toBeUndefined();
      expect(primary['x-envoy-external-address']).toBeUndefined();
    }));
});

describe("a client's x-envoy-* headers", () => {
  const SPOOF = { 'x-envoy-internal': 'true', 'x-envoy-retry-on': '5xx', 'x-envoy-max-retries': '5', 'x-envoy-upstream-rq-timeout-ms': '1', 'x-envoy-decorator-operation': 'op' };

  test('default connection manager: x-envoy-internal and the router hints never reach the upstream', () =>
    withSidecar({}, async ({ p, up }) => {
      await fetchText(`${p.url}/`, { headers: SPOOF });
      const h = up.primary!.requests[0]!.headers;
      for (const name of ['x-envoy-internal', 'x-envoy-retry-on', 'x-envoy-max-retries', 'x-envoy-upstream-rq-timeout-ms']) expect(h[name]).toBeUndefined();
      // Not an edge request (use_remote_address is off): the edge-only header is passed on.
      expect(h['x-envoy-decorator-operation']).toBe('op');
    }));

  test('edge (use_remote_address): also the edge-only ones; XFF gets the node address for a loopback peer', () =>
    withSidecar({ hcm: { use_remote_address: true } }, async ({ p, up }) => {
      await fetchText(`${p.url}/`, { headers: { ...SPOOF, 'x-envoy-external-address': '203.0.113.9', 'x-request-id': 'from-client' } });
      const h = up.primary!.requests[0]!.headers;
      expect(h['x-envoy-internal']).toBeUndefined();
      expect(h['x-envoy-decorator-operation']).toBeUndefined();
      expect(h['x-envoy-external-address']).toBe('127.0.0.1');
      expect(h['x-forwarded-for']).toBe(nodeAddress());
      expect(h['x-request-id']).not.toBe('from-client');
    }));

  // The retry hints are honoured, so the router consumes them as Envoy does (retries.test.ts).
  test('an internal caller keeps them and is marked x-envoy-internal; the router consumes its retry hints', () =>
    withSidecar({ hcm: { use_remote_address: true, internal_address_config: LOOPBACK_INTERNAL } }, async ({ p, up }) => {
      await fetchText(`${p.url}/`, { headers: { ...SPOOF, 'x-request-id': 'from-client' } });
      const h = up.primary!.requests[0]!.headers;
      expect(h['x-envoy-internal']).toBe('true');
      expect(h['x-envoy-decorator-operation']).toBe('op');
      expect(h['x-envoy-retry-on']).toBeUndefined();
      expect(h['x-envoy-max-retries']).toBeUndefined();
      expect(h['x-request-id']).toBe('from-client');
    }));
});

describe("the mirror filter's cluster_header target: allowed_clusters", () => {
  const byHeader = (extra: Json = {}): Json => ({ name: 'hdr', cluster_header: 'x-mirror-cluster', allowed_clusters: { names: ['mirror'] }, ...extra });

  test('a header naming a cluster outside the list is skipped and counted, never sent; an allowed one mirrors', () =>
    withSidecar({ ext: [byHeader()] }, async ({ p, up }) => {
      expect((await fetchText(`${p.url}/no`, { headers: { 'x-mirror-cluster': 'secret' } })).body).toBe('primary');
      expect((await fetchText(`${p.url}/yes`, { headers: { 'x-mirror-cluster': 'mirror' } })).body).toBe('primary');
      const [shadow] = await up.mirror!.waitForRequests(1);
      expect(shadow!.url).toBe('/yes');
      await expectNothing(up.secret!);
      expect(await stat(p, 'cluster.header:x-mirror-cluster.shadow.skipped.cluster_not_allowed')).toBe(1);
      expect(await stat(p, 'mirror_policy.hdr.skipped.cluster_not_allowed')).toBe(1);
      expect(await stat(p, 'cluster.secret.shadow.sent')).toBe(0);
    }));

  test('prefixes: any cluster whose name starts with one is allowed', () =>
    withSidecar({ ext: [byHeader({ allowed_clusters: { prefixes: ['mir'] } })] }, async ({ p, up }) => {
      await fetchText(`${p.url}/m`, { headers: { 'x-mirror-cluster': 'mirror' } });
      await fetchText(`${p.url}/s`, { headers: { 'x-mirror-cluster': 'secret' } });
      await up.mirror!.waitForRequests(1);
      await expectNothing(up.secret!);
      expect(await stat(p, 'mirror_policy.hdr.skipped.cluster_not_allowed')).toBe(1);
    }));

  test("SYNC with an afterMirror hook: a disallowed cluster's answer never comes back in the client's response", () =>
    withSidecar({ ext: [byHeader({ mode: 'SYNC', sync_timeout: '5s', hooks: { module: EXAMPLE_HOOKS } })] }, async ({ p, up }) => {
      const leak = await fetchText(`${p.url}/`, { headers: { 'x-mirror-cluster': 'secret', authorization: 'Bearer client-token' } });
      expect(leak.body).toBe('primary');
      expect(leak.headers['x-mirror-body']).toBeUndefined();
      await expectNothing(up.secret!);
      // The allowed cluster still works the same way.
      const ok = await fetchText(`${p.url}/`, { headers: { 'x-mirror-cluster': 'mirror' } });
      expect(ok.headers['x-mirror-body']).toBe('mirror');
    }));

  test('the target reads the header after internal_only_headers: an external caller cannot steer it at all', () =>
    withSidecar({ hcm: { use_remote_address: true, internal_address_config: LOOPBACK_INTERNAL }, rc: { internal_only_headers: ['x-mirror-cluster'] }, ext: [byHeader()] }, async ({ p, up }) => {
      await fetchText(`${p.url}/ext`, { headers: { 'x-mirror-cluster': 'mirror', 'x-forwarded-for': '198.51.100.1' } });
      await fetchText(`${p.url}/int`, { headers: { 'x-mirror-cluster': 'mirror' } });
      const [shadow] = await up.mirror!.waitForRequests(1);
      await sleep(200);
      expect(up.mirror!.requests.map((r) => r.url)).toEqual(['/int']);
      expect(shadow!.headers['x-mirror-cluster']).toBe('mirror');
      expect(await stat(p, 'mirror_policy.hdr.skipped.missing_header')).toBe(1);
    }));
});
