import { SERVICES, startSandbox } from './sandbox';

// `npm start`: the route-mirror sandbox on loopback, until Ctrl-C.

async function main(): Promise<void> {
  const mode = process.argv.includes('--xds') ? 'xds' : 'static';
  const sandbox = await startSandbox({ mode, onLine: (name, line) => process.stdout.write(`${name.padEnd(16)}| ${line}\n`) });
  const p = sandbox.proxyPort;
  process.stdout.write(`
sidemirror is serving Envoy's route-mirror sandbox on http://localhost:${p}
  services: ${SERVICES.map((s) => s.name).join(', ')}
  config:   ${mode === 'xds' ? `over xDS from the control plane; edit ${sandbox.resourcesFile} to change it live` : 'examples/route-mirror/envoy.yaml'}

Try:
  curl -s http://localhost:${p}/service/1
      → "Hello from behind Envoy (service 1)!"; service1-mirror logs "Host: localhost-shadow:${p}"
  curl -s -H 'x-mirror-cluster: service2-mirror' http://localhost:${p}/service/2
      → "Hello from behind Envoy (service 2)!"; service2-mirror logs "Host: localhost-shadow:${p}"
  curl -s http://localhost:${p}/service/2
      → no header, no mirror
Ctrl-C stops everything.

`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void sandbox.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
