import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { type Sandbox, startSandbox } from '../../examples/route-mirror/sandbox';
import { SandboxClient, defineVerifySteps, ensureBuilt, sleep, startOnFreePorts } from '../harness/sandbox-steps';

// Envoy's route-mirror sandbox driven over xDS: the control plane serves a copy of
// examples/route-mirror/xds/resources.yaml, the front proxy starts from xds/front-proxy.yaml (only
// the xDS cluster), each in its own process. The five verify steps, then a live edit of the file.

const ROOT = path.resolve(__dirname, '..', '..');

/** Binds 127.0.0.1:`port` (0: any) and closes it again; the bound port, or null when taken. */
async function tryBind(port: number): Promise<number | null> {
  const server = net.createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (!bound) return null;
  const got = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return got;
}

const freePort = async (): Promise<number> => (await tryBind(0))!;

/**
 * A free port whose successor is free too (the control plane's admin takes port + 1). Some kernels
 * hand out bind(0) ports with the neighbour reserved, so look below the usual ephemeral range.
 */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const p = 20_000 + Math.floor(Math.random() * 12_000);
    if ((await tryBind(p)) !== null && (await tryBind(p + 1)) !== null) return p;
  }
  throw new Error('no two consecutive free ports found in 100 tries');
}

let sandbox: Sandbox;
const c = new SandboxClient(() => sandbox);
const curl = (p: string, h?: Record<string, string>): ReturnType<SandboxClient['curl']> => c.curl(p, h);
const logs = (name: Parameters<SandboxClient['logs']>[0]): string[] => c.logs(name);
const getLines = (name: Parameters<SandboxClient['logs']>[0]): string[] => c.getLines(name);
const waitForLog = (...a: Parameters<SandboxClient['waitForLog']>): Promise<void> => c.waitForLog(...a);

beforeAll(async () => {
  ensureBuilt();
  let controlPlanePort = 0;
  let ports: number[] = [];
  sandbox = await startOnFreePorts(async () => {
    controlPlanePort = await freePortPair();
    ports = [];
    while (ports.length < 5) {
      const p = await freePort();
      if (p !== controlPlanePort && p !== controlPlanePort + 1 && !ports.includes(p)) ports.push(p);
    }
    return startSandbox({
      mode: 'xds',
      controlPlanePort,
      proxyPort: ports[0],
      servicePorts: { service1: ports[1], 'service1-mirror': ports[2], service2: ports[3], 'service2-mirror': ports[4] },
    });
  });
  expect(sandbox.proxyPort).toBe(ports[0]);
  // The control plane watches a private copy, never the file in the repository.
  expect(sandbox.resourcesFile).not.toBeNull();
  expect(path.resolve(sandbox.resourcesFile!)).not.toBe(path.join(ROOT, 'examples', 'route-mirror', 'xds', 'resources.yaml'));
  expect(sandbox.controlPlaneAdminPort).toBe(controlPlanePort + 1);
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
});

// The steps build on each other, as the verify script's do; they run in file order.

defineVerifySteps(c);

test('editing the resources file moves /service/1\'s mirror to service2-mirror within a second', async () => {
  const doc = parseDocument(fs.readFileSync(sandbox.resourcesFile!, 'utf8'));
  const items = (doc.get('resources') as { items: unknown[] }).items;
  const rc = items.findIndex((_r, i) => String(doc.getIn(['resources', i, '@type'])).endsWith('.RouteConfiguration'));
  const routes = ['resources', rc, 'virtual_hosts', 0, 'routes'];
  expect(doc.getIn([...routes, 0, 'match', 'prefix'])).toBe('/service/1');
  const policy = [...routes, 0, 'route', 'request_mirror_policies', 0, 'cluster'];
  expect(doc.getIn(policy)).toBe('service1-mirror');
  doc.setIn(policy, 'service2-mirror');

  const mirroredProbe = (): number | null => {
    const line = getLines('service2-mirror').find((l) => l.includes('GET /service/1?probe='));
    return line ? Number(/probe=(\d+)/.exec(line)![1]) : null;
  };
  const writtenAt = Date.now();
  fs.writeFileSync(sandbox.resourcesFile!, doc.toString());
  // Probe every 50 ms (bounded: 60 probes, 3 s); each probe's send time is kept by its number.
  const sentAt: number[] = [];
  let hit: number | null = null;
  for (let i = 0; i < 60 && Date.now() - writtenAt < 3000 && hit === null; i++) {
    sentAt.push(Date.now());
    const r = await curl(`/service/1?probe=${i}`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('Hello from behind Envoy (service 1)!\n');
    await sleep(50);
    hit = mirroredProbe();
  }
  expect(hit).not.toBeNull();
  expect(sentAt[hit!]! - writtenAt).toBeLessThan(1000);
  // From then on, /service/1 is mirrored to service2-mirror only.
  const before = getLines('service1-mirror').length;
  await curl('/service/1?after=1');
  await waitForLog('service2-mirror', (l) => l.includes('GET /service/1?after=1'));
  await sleep(200);
  expect(getLines('service1-mirror')).toHaveLength(before);
  expect(logs('service2-mirror')).toContain(`Host: localhost-shadow:${c.port}`);
});
