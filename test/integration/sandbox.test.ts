import * as net from 'node:net';
import { type Sandbox, startSandbox } from '../../examples/route-mirror/sandbox';
import { SandboxClient, defineVerifySteps, ensureBuilt, startOnFreePorts } from '../harness/sandbox-steps';

// Envoy's route-mirror sandbox, natively: the five steps of its verify script
// (/work/shared/sandbox/README.md), against the built proxy and services in separate processes.

/** A loopback port that was free a moment ago (bind to 0, read it, close). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let sandbox: Sandbox;

beforeAll(async () => {
  ensureBuilt();
  let ports: number[] = [];
  sandbox = await startOnFreePorts(async () => {
    ports = [];
    for (let i = 0; i < 5; i++) ports.push(await freePort());
    return startSandbox({
      proxyPort: ports[0],
      servicePorts: { service1: ports[1], 'service1-mirror': ports[2], service2: ports[3], 'service2-mirror': ports[4] },
    });
  });
  expect(sandbox.proxyPort).toBe(ports[0]);
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
});

defineVerifySteps(new SandboxClient(() => sandbox));

describe('npm start on a busy port', () => {
  test('fails at once, naming the port and the flag, before any process starts', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const busy = (holder.address() as net.AddressInfo).port;
    const servicePorts = { service1: await freePort(), 'service1-mirror': await freePort(), service2: await freePort(), 'service2-mirror': await freePort() };
    try {
      await expect(startSandbox({ proxyPort: busy, servicePorts })).rejects.toThrow(
        `port ${busy}, for the front proxy (--port), is already in use on 127.0.0.1; stop what holds it or choose another port`,
      );
      // Nothing was started: every service port is still free.
      for (const port of Object.values(servicePorts)) {
        await new Promise<void>((resolve, reject) => {
          const probe = net.connect(port, '127.0.0.1');
          probe.once('connect', () => { probe.destroy(); reject(new Error(`something listens on ${port}`)); });
          probe.once('error', () => resolve());
        });
      }
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });
});
