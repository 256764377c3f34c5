import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { proxyEnv, proxyExecArgv } from '../../src/workers/heap-flags';

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
  /**
   * `static`: the front proxy runs envoy.yaml. `xds`: a control plane serves xds/resources.yaml
   * and the front proxy runs xds/front-proxy.yaml (only the xDS cluster).
   */
  readonly mode?: 'static' | 'xds';
  /** The control plane's gRPC port in xds mode (default 18000). */
  readonly controlPlanePort?: number;
  /** The front proxy's port; default: the one in envoy.yaml (10000). */
  readonly proxyPort?: number;
  /** Each service's port; default: the ones in envoy.yaml. */
  readonly servicePorts?: Partial<Record<ServiceName, number>>;
  /** Called with every line a process prints, prefixed by its name. */
  readonly onLine?: (name: string, line: string) => void;
  /** Aborting it while the sandbox starts stops what was started and rejects. */
  readonly signal?: AbortSignal;
}

export interface Sandbox {
  readonly proxyPort: number;
  /** In xds mode: the resources file the control plane watches (edit it to change the proxy). */
  readonly resourcesFile: string | null;
  /** In xds mode: the control plane's admin port. */
  readonly controlPlaneAdminPort: number | null;
  /** Every line a service printed so far (stdout and stderr, like `docker compose logs`). */
  logs(name: ServiceName | 'front-proxy' | 'control-plane'): string[];
  /** Settles with the name and exit code of the first process that ends before stop() is called. */
  readonly exited: Promise<{ name: string; code: number | null }>;
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
  /** The file the front proxy loads. */
  configFile: string;
  /** xds mode: the resources file the control plane serves. */
  resourcesFile: string | null;
  controlPlanePort: number;
  controlPlaneAdminPort: number;
  dir: string;
}

type Doc = ReturnType<typeof parseDocument>;
type Path = Array<string | number>;

/**
 * Applies port overrides to the listener and the four clusters of a document in which they sit
 * at `listeners` / `clusters` (envoy.yaml's static_resources, or the resources file's list).
 */
function overridePorts(doc: Doc, o: SandboxOptions, listenerPort: Path, clusterPaths: Path[]): { proxyPort: number; servicePorts: Record<ServiceName, number> } {
  if (o.proxyPort !== undefined) doc.setIn(listenerPort, o.proxyPort);
  const servicePorts = {} as Record<ServiceName, number>;
  for (const base of clusterPaths) {
    const name = doc.getIn([...base, 'name']) as ServiceName;
    const portPath = [...base, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'port_value'];
    const override = o.servicePorts?.[name];
    if (override !== undefined) doc.setIn(portPath, override);
    servicePorts[name] = Number(doc.getIn(portPath));
  }
  return { proxyPort: Number(doc.getIn(listenerPort)), servicePorts };
}

/** Reads the sandbox's files, applies port overrides, and writes the copies the processes load. */
function planPorts(o: SandboxOptions): PortPlan {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-sandbox-'));
  const controlPlanePort = o.controlPlanePort ?? 18000;
  if ((o.mode ?? 'static') === 'static') {
    const doc = parseDocument(fs.readFileSync(envoyYamlPath(), 'utf8'));
    const clusters = (doc.getIn(['static_resources', 'clusters']) as { items: unknown[] }).items;
    const ports = overridePorts(doc, o, ['static_resources', 'listeners', 0, 'address', 'socket_address', 'port_value'],
      clusters.map((_c, i) => ['static_resources', 'clusters', i]));
    const configFile = path.join(dir, 'envoy.yaml');
    fs.writeFileSync(configFile, doc.toString());
    return { ...ports, configFile, resourcesFile: null, controlPlanePort, controlPlaneAdminPort: 0, dir };
  }
  const xdsDir = path.join(path.dirname(envoyYamlPath()), 'xds');
  const resources = parseDocument(fs.readFileSync(path.join(xdsDir, 'resources.yaml'), 'utf8'));
  const items = (resources.get('resources') as { items: unknown[] }).items;
  const listenerIndex = items.findIndex((_r, i) => String(resources.getIn(['resources', i, '@type'])).endsWith('.Listener'));
  const clusterIndexes = items.map((_r, i) => i).filter((i) => String(resources.getIn(['resources', i, '@type'])).endsWith('.Cluster'));
  const ports = overridePorts(resources, o, ['resources', listenerIndex, 'address', 'socket_address', 'port_value'],
    clusterIndexes.map((i) => ['resources', i]));
  // Without overrides the control plane watches the file in the repository, so that editing it
  // changes the running sandbox.
  const original = path.join(xdsDir, 'resources.yaml');
  const resourcesFile = o.proxyPort === undefined && o.servicePorts === undefined ? original : path.join(dir, 'resources.yaml');
  if (resourcesFile !== original) fs.writeFileSync(resourcesFile, resources.toString());
  const bootstrap = parseDocument(fs.readFileSync(path.join(xdsDir, 'front-proxy.yaml'), 'utf8'));
  bootstrap.setIn(['static_resources', 'clusters', 0, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'port_value'], controlPlanePort);
  const configFile = path.join(dir, 'front-proxy.yaml');
  fs.writeFileSync(configFile, bootstrap.toString());
  return { ...ports, configFile, resourcesFile, controlPlanePort, controlPlaneAdminPort: controlPlanePort + 1, dir };
}

/** Throws, naming the first port that something else holds, before any process starts. */
async function checkPortsFree(plan: PortPlan, xds: boolean): Promise<void> {
  const wanted: Array<[number, string]> = [
    [plan.proxyPort, 'the front proxy (--port)'],
    ...SERVICES.map((s): [number, string] => [plan.servicePorts[s.name], `${s.name} (--service-port)`]),
    ...(xds ? [[plan.controlPlanePort, 'the control plane (--control-plane-port)'], [plan.controlPlaneAdminPort, "the control plane's admin"]] as Array<[number, string]> : []),
  ];
  for (const [port, what] of wanted) {
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
    });
    if (!free) throw new Error(`port ${port}, for ${what}, is already in use on 127.0.0.1; stop what holds it or choose another port`);
  }
}

export async function startSandbox(o: SandboxOptions = {}): Promise<Sandbox> {
  const plan = planPorts(o);
  try {
    await checkPortsFree(plan, plan.resourcesFile !== null);
  } catch (err) {
    fs.rmSync(plan.dir, { recursive: true, force: true });
    throw err;
  }
  const logs = new Map<string, string[]>();
  const children: ChildProcess[] = [];
  let stopping = false;
  let onExit: (e: { name: string; code: number | null }) => void = () => undefined;
  const exited = new Promise<{ name: string; code: number | null }>((resolve) => (onExit = resolve));
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
    child.once('exit', (code) => {
      if (!stopping) onExit({ name, code });
    });
    return child;
  };
  const stop = async (): Promise<void> => {
    stopping = true;
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    })));
    fs.rmSync(plan.dir, { recursive: true, force: true });
  };
  // Start-up gives up when a process ends early or the caller aborts (Ctrl-C while starting).
  const failed = new Promise<never>((_resolve, reject) => {
    void exited.then(({ name, code }) => reject(new Error(`${name} exited with ${code}: ${(logs.get(name) ?? []).join('\n')}`)));
    o.signal?.addEventListener('abort', () => reject(new Error('interrupted while starting')), { once: true });
  });
  failed.catch(() => undefined);
  const step = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);
  try {
    for (const s of SERVICES) {
      launch(s.name, [distFile('examples', 'route-mirror', 'service.js')], { SERVICE_NAME: s.serviceName, PORT: String(plan.servicePorts[s.name]) });
    }
    await step(Promise.all(SERVICES.map((s) => waitForPort(plan.servicePorts[s.name]))));
    if (plan.resourcesFile) {
      launch('control-plane', [distFile('src', 'cli.js'), 'control-plane', '-c', plan.resourcesFile,
        '--listen', `127.0.0.1:${plan.controlPlanePort}`, '--admin', `127.0.0.1:${plan.controlPlaneAdminPort}`], {});
      await step(waitForPort(plan.controlPlanePort, 30_000));
    }
    launch('front-proxy', [...proxyExecArgv([], process.env.NODE_OPTIONS), distFile('src', 'cli.js'), 'proxy', '-c', plan.configFile], proxyEnv(process.env));
    // Something else may have taken the port since it was found free: only the proxy's own
    // "listener started" says that the port is the proxy's.
    await step(waitForLine(() => logs.get('front-proxy') ?? [], listenerStarted(plan.proxyPort), 30_000));
    await step(waitForPort(plan.proxyPort, 30_000));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    proxyPort: plan.proxyPort,
    resourcesFile: plan.resourcesFile,
    controlPlaneAdminPort: plan.resourcesFile ? plan.controlPlaneAdminPort : null,
    logs: (name) => [...(logs.get(name) ?? [])],
    exited,
    stop,
  };
}

/** The proxy's log line for a listener bound to `port`, or a line saying it could not bind it. */
function listenerStarted(port: number): (line: string) => boolean {
  return (line) => {
    if (line.includes(`cannot bind 127.0.0.1:${port}`) || line.includes(`:${port}: EADDRINUSE`)) throw new Error(`the front proxy could not bind port ${port}: ${line}`);
    return line.includes('"msg":"listener started"') && line.includes(`"port":${port}`);
  };
}

/** Polls `lines()` until one satisfies `match` (which may throw to give up). */
async function waitForLine(lines: () => readonly string[], match: (line: string) => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!lines().some(match)) {
    if (Date.now() > deadline) throw new Error(`no "listener started" line after ${timeoutMs} ms: ${lines().join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
