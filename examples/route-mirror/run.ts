import { parseArgs } from 'node:util';
import { SERVICES, type SandboxOptions, type ServiceName, startSandbox } from './sandbox';

// `npm start`: the route-mirror sandbox on loopback, until Ctrl-C.

const USAGE = `npm start [-- --port 10000] [--service-port 18081] [--control-plane-port 18000] [--xds]
  --port N               the front proxy's port (env SIDEMIRROR_SANDBOX_PORT; default 10000)
  --service-port N       the four services on N..N+3 (env SIDEMIRROR_SANDBOX_SERVICE_PORT; default 18081)
  --control-plane-port N with --xds: the control plane's gRPC port, admin on N+1
                         (env SIDEMIRROR_SANDBOX_CONTROL_PLANE_PORT; default 18000)
`;

function port(value: string | undefined, flag: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${flag} must be a port number (1-65535); got "${value}"`);
  return n;
}

function options(argv: string[]): SandboxOptions {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string' }, 'service-port': { type: 'string' }, 'control-plane-port': { type: 'string' }, xds: { type: 'boolean' } },
  });
  const env = process.env;
  const base = port(values['service-port'] ?? env.SIDEMIRROR_SANDBOX_SERVICE_PORT, '--service-port');
  if (base !== undefined && base + SERVICES.length - 1 > 65535) throw new Error(`--service-port ${base}: the four services need ${base}..${base + 3}`);
  return {
    mode: values.xds ? 'xds' : 'static',
    proxyPort: port(values.port ?? env.SIDEMIRROR_SANDBOX_PORT, '--port'),
    controlPlanePort: port(values['control-plane-port'] ?? env.SIDEMIRROR_SANDBOX_CONTROL_PLANE_PORT, '--control-plane-port'),
    servicePorts: base === undefined ? undefined
      : Object.fromEntries(SERVICES.map((s, i) => [s.name, base + i])) as Record<ServiceName, number>,
  };
}

async function main(): Promise<number> {
  let o: SandboxOptions;
  try {
    o = options(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  // Ctrl-C while the processes start stops them too (none is left running on its own).
  const starting = new AbortController();
  const interrupt = (): void => starting.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const sandbox = await startSandbox({ ...o, signal: starting.signal, onLine: (name, line) => process.stdout.write(`${name.padEnd(16)}| ${line}\n`) });
  process.off('SIGINT', interrupt);
  process.off('SIGTERM', interrupt);
  const p = sandbox.proxyPort;
  process.stdout.write(`
sidemirror is serving Envoy's route-mirror sandbox on http://localhost:${p}
  services: ${SERVICES.map((s) => s.name).join(', ')}
  config:   ${o.mode === 'xds' ? `over xDS from the control plane; edit ${sandbox.resourcesFile} to change it live` : 'examples/route-mirror/envoy.yaml'}

Try:
  curl -s http://localhost:${p}/service/1
      → "Hello from behind Envoy (service 1)!"; service1-mirror logs "Host: localhost-shadow:${p}"
  curl -s -H 'x-mirror-cluster: service2-mirror' http://localhost:${p}/service/2
      → "Hello from behind Envoy (service 2)!"; service2-mirror logs "Host: localhost-shadow:${p}"
  curl -s http://localhost:${p}/service/2
      → no header, no mirror
Ctrl-C stops everything.

`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (code: number): void => {
      if (stopping) return;
      stopping = true;
      void sandbox.stop().then(() => resolve(code));
    };
    process.on('SIGINT', () => stop(0));
    process.on('SIGTERM', () => stop(0));
    // One process gone means the sandbox is not what the banner says: stop the rest and say so.
    void sandbox.exited.then(({ name, code }) => {
      process.stderr.write(`${name} exited (code ${code}); stopping the sandbox\n`);
      stop(1);
    });
  });
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
