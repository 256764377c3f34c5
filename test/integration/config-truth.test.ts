import * as net from 'node:net';
import { loadBootstrapText } from '../../src/config/load';
import { ListenerBindError } from '../../src/listener/listener-manager';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy, statValue } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// Config that says what it does, with a real proxy and real upstreams on 127.0.0.1: a static
// runtime layer steers mirroring, and a reload that cannot bind its listener changes nothing.

let primary: Upstream;
let mirror: Upstream;
let other: Upstream;
let p: TestProxy | null;

beforeEach(async () => {
  primary = await startUpstream({ name: 'primary' });
  mirror = await startUpstream({ name: 'mirror' });
  other = await startUpstream({ name: 'other' });
  p = null;
});

afterEach(async () => {
  await p?.stop();
  for (const u of [primary, mirror, other]) await u.close();
});

const mirrored = (layers: unknown[]): string => bootstrap({
  listeners: [listener(routeConfig([route('/', 'primary', {
    request_mirror_policies: [{ cluster: 'mirror', runtime_fraction: { default_value: { numerator: 100 }, runtime_key: 'mirror.rf' } }],
  })]))],
  clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
  extra: { layered_runtime: { layers } },
});

test('a static_layer mirror.rf: 0 stops the mirror, /runtime shows it, and the admin layer overrides it', async () => {
  p = await startProxy(mirrored([{ name: 'static_layer_0', static_layer: { 'mirror.rf': 0 } }, { name: 'admin', admin_layer: {} }]));
  for (let i = 0; i < 20; i++) expect(await fetchText(`${p.url}/quiet-${i}`)).toMatchObject({ status: 200, body: 'primary' });
  await sleep(300); // shadows are fire-and-forget: give any that were sent time to land
  expect(primary.requests).toHaveLength(20);
  expect(mirror.requests).toHaveLength(0);

  const runtime = JSON.parse((await fetchText(`${p.adminUrl}/runtime`)).body) as unknown;
  expect(runtime).toEqual({ layers: ['static_layer_0', 'admin'], entries: { 'mirror.rf': { layer_values: ['0', ''], final_value: '0' } } });

  expect((await fetchText(`${p.adminUrl}/runtime_modify?mirror.rf=100`, { method: 'POST' })).status).toBe(200);
  expect(await fetchText(`${p.url}/loud`)).toMatchObject({ status: 200 });
  const [shadow] = await mirror.waitForRequests(1);
  expect(shadow!.url).toBe('/loud');
  const after = JSON.parse((await fetchText(`${p.adminUrl}/runtime`)).body) as { entries: Record<string, unknown> };
  expect(after.entries['mirror.rf']).toEqual({ layer_values: ['0', '100'], final_value: '100' });
});

test('without an admin layer /runtime_modify is refused (503) and the static value stays in force', async () => {
  p = await startProxy(mirrored([{ name: 'base', static_layer: { mirror: { rf: 0 } } }]));
  const r = await fetchText(`${p.adminUrl}/runtime_modify?mirror.rf=100`, { method: 'POST' });
  expect(r).toMatchObject({ status: 503, body: 'No admin layer specified\n' });
  await fetchText(`${p.url}/still-quiet`);
  await sleep(300);
  expect(mirror.requests).toHaveLength(0);
});

test('a reload onto a port another socket holds is refused and the old config keeps serving', async () => {
  const text = (port: number, to: string): string => bootstrap({
    listeners: [listener(routeConfig([route('/', to)]), { port })],
    clusters: [cluster('primary', [primary.port]), cluster('other', [other.port])],
  });
  p = await startProxy(text(0, 'primary'));
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
  try {
    const taken = (holder.address() as net.AddressInfo).port;
    const reloading = p.proxy.reload(loadBootstrapText(text(taken, 'other')));
    await expect(reloading).rejects.toBeInstanceOf(ListenerBindError);
    await expect(reloading).rejects.toThrow(`Listener "ingress": cannot bind 127.0.0.1:${taken}: EADDRINUSE`);
    expect(p.proxy.listeners.address('ingress')!.port).toBe(p.port);
    expect(await fetchText(`${p.url}/after`)).toMatchObject({ status: 200, body: 'primary' });
    expect(other.requests).toHaveLength(0);
    expect(await statValue(p.adminUrl, 'listener_manager.listener_create_failure')).toBe(1);
  } finally {
    await new Promise<void>((resolve) => holder.close(() => resolve()));
  }
});
