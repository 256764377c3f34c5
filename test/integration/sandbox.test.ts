import * as net from 'node:net';
import { type Sandbox, startSandbox } from '../../examples/route-mirror/sandbox';
import { SandboxClient, defineVerifySteps, ensureBuilt } from '../harness/sandbox-steps';

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
  const ports = [];
  for (let i = 0; i < 5; i++) ports.push(await freePort());
  sandbox = await startSandbox({
    proxyPort: ports[0],
    servicePorts: { service1: ports[1], 'service1-mirror': ports[2], service2: ports[3], 'service2-mirror': ports[4] },
  });
  expect(sandbox.proxyPort).toBe(ports[0]);
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
});

defineVerifySteps(new SandboxClient(() => sandbox));
