import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument } from 'yaml';

// Runs Envoy's route-mirror sandbox natively: four services and the front proxy, each its own
// process on loopback, exactly as docker compose would run them but without containers.

export const SERVICES = [
  { name: 'service1', serviceName: '1' },
  { name: 'service1-mirror', serviceName: '1' },
  { name: 'service2', serviceName: '2' },
  { name: 'service2-mirror', serviceName: '2' },
] as const;

export type ServiceName = (typeof SERVICES)[number]['name'];

export interface SandboxOptions {
  /** The front proxy's port; default: the one in envoy.yaml (10000). */
  readonly proxyPort?: number;
  /** Each service's port; default: the ones in envoy.yaml. */
  readonly servicePorts?: Partial<Record<ServiceName, number>>;
  /** Called with every line a process prints, prefixed by its name. */
  readonly onLine?: (name: string, line: string) => void;
}

export interface Sandbox {
  readonly proxyPort: number;
  /** Every line a service printed so far (stdout and stderr, like `docker compose logs`). */
  logs(name: ServiceName | 'front-proxy'): string[];
  stop(): Promise<void>;
}

const HERE = __dirname;
/** The built JavaScript: `dist/…` when running from the TypeScript sources under ts-jest. */
function distFile(...parts: string[]): string {
  const root = path.resolve(HERE, '..', '..');
  const built = path.basename(root) === 'dist' ? root : path.join(root, 'dist');
  return path.join(built, ...parts);
}

export function envoyYamlPath(): string {
  const candidates = [path.join(HERE, 'envoy.yaml'), path.resolve(HERE, '..', '..', '..', 'examples', 'route-mirror', 'envoy.yaml')];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error(`envoy.yaml not found near ${HERE}`);
  return found;
}

interface PortPlan {
  proxyPort: number;
  servicePorts: Record<ServiceName, number>;
  configFile: string;
}

/** Reads envoy.yaml, applies port overrides, and writes the copy the proxy will load. */
function planPorts(o: SandboxOptions): PortPlan {
  const doc = parseDocument(fs.readFileSync(envoyYamlPath(), 'utf8'));
  const listenerPort = ['static_resources', 'listeners', 0, 'address', 'socket_address', 'port_value'];
  if (o.proxyPort !== undefined) doc.setIn(listenerPort, o.proxyPort);
  const servicePorts = {} as Record<ServiceName, number>;
  const clusters = doc.getIn(['static_resources', 'clusters']) as { items: unknown[] };
  clusters.items.forEach((_c, i) => {
    const name = doc.getIn(['static_resources', 'clusters', i, 'name']) as ServiceName;
    const portPath = ['static_resources', 'clusters', i, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'port_value'];
    const override = o.servicePorts?.[name];
    if (override !== undefined) doc.setIn(portPath, override);
    servicePorts[name] = Number(doc.getIn(portPath));
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-sandbox-'));
  const configFile = path.join(dir, 'envoy.yaml');
  fs.writeFileSync(configFile, doc.toString());
  return { proxyPort: Number(doc.getIn(listenerPort)), servicePorts, configFile };
}

export async function startSandbox(o: SandboxOptions = {}): Promise<Sandbox> {
  const plan = planPorts(o);
  const logs = new Map<string, string[]>();
  const children: ChildProcess[] = [];
  const launch = (name: string, args: string[], env: Record<string, string>): ChildProcess => {
    const lines: string[] = [];
    logs.set(name, lines);
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout!, child.stderr!]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (data: string) => {
        pending += data;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          lines.push(line);
          o.onLine?.(name, line);
        }
      });
    }
    children.push(child);
    return child;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    })));
    fs.rmSync(path.dirname(plan.configFile), { recursive: true, force: true });
  };
  try {
    for (const s of SERVICES) {
      launch(s.name, [distFile('examples', 'route-mirror', 'service.js')], { SERVICE_NAME: s.serviceName, PORT: String(plan.servicePorts[s.name]) });
    }
    await Promise.all(SERVICES.map((s) => waitForPort(plan.servicePorts[s.name])));
    const proxy = launch('front-proxy', [distFile('src', 'cli.js'), 'proxy', '-c', plan.configFile], {});
    await Promise.race([
      waitForPort(plan.proxyPort),
      new Promise((_r, reject) => proxy.once('exit', (code) => reject(new Error(`front proxy exited with ${code}: ${(logs.get('front-proxy') ?? []).join('\n')}`)))),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { proxyPort: plan.proxyPort, logs: (name) => [...(logs.get(name) ?? [])], stop };
}

/** Polls until something accepts connections on 127.0.0.1:port (10 s at most). */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
