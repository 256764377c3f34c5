import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { proxyEnv, proxyExecArgv } from '../../src/workers/heap-flags';
import { type ExampleCertificates, makeCertificates } from './certs';
import { type PortOverrides, type Ports, writeConfig } from './config';

// The example's three processes on loopback: the Greeter (primary), its mirror, and the sidecar
// (`sidemirror proxy -c envoy.yaml`), each a child of the example, stopped by its handle.

export type ProcessName = 'greeter' | 'greeter-mirror' | 'sidecar';

export interface StackOptions {
  readonly tls: boolean;
  readonly ports?: PortOverrides;
  /** The sidecar's --log-level (default warn). */
  readonly logLevel?: string;
  /** Every line a process prints, as it arrives. */
  readonly onLine?: (name: ProcessName, line: string) => void;
  /** Aborting it while the stack starts stops what was started and rejects. */
  readonly signal?: AbortSignal;
}

export interface Stack {
  readonly ports: Ports;
  readonly tls: boolean;
  /** TLS: the CA file the client trusts (removed on stop). */
  readonly caFile: string | null;
  /** The config the sidecar runs (a copy of envoy.yaml or envoy-tls.yaml with the ports set). */
  readonly configFile: string;
  /** The sidecar's command line, for the banner. */
  readonly sidecarCommand: string;
  /** Settles with the first process that ends before stop(). */
  readonly exited: Promise<{ name: ProcessName; code: number | null }>;
  stop(): Promise<void>;
}

const MAX_LOG_LINES = 1000;

/** The built JavaScript of `parts` (dist/…), whether this module runs from dist/ or from the sources. */
function distFile(...parts: string[]): string {
  const root = path.resolve(__dirname, '..', '..');
  const built = path.basename(root) === 'dist' ? root : path.join(root, 'dist');
  return path.join(built, ...parts);
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Polls until something accepts connections on 127.0.0.1:port. */
async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-grpc-example-'));
  let certs: ExampleCertificates | undefined;
  const children: ChildProcess[] = [];
  let stopping = false;
  let cleaned = false;
  // The last resort when the example exits without stop() (an uncaught error): no orphans, no files.
  const cleanupNow = (): void => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    certs?.remove();
  };
  process.once('exit', cleanupNow);
  const stop = async (): Promise<void> => {
    stopping = true;
    await Promise.all(children.map((c) => stopChild(c)));
    cleanupNow();
    process.off('exit', cleanupNow);
  };

  let onExit: (e: { name: ProcessName; code: number | null }) => void = () => undefined;
  const exited = new Promise<{ name: ProcessName; code: number | null }>((resolve) => (onExit = resolve));
  const logs = new Map<ProcessName, string[]>();
  const launch = (name: ProcessName, args: string[], env: Record<string, string> = {}): void => {
    const lines: string[] = [];
    logs.set(name, lines);
    // Services get a stdin pipe: they exit when it closes, that is when the example is gone.
    const stdin = name === 'sidecar' ? 'ignore' : 'pipe';
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
    children.push(child);
    for (const stream of [child.stdout, child.stderr]) {
      let pending = '';
      stream?.setEncoding('utf8').on('data', (data: string) => {
        pending += data;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          lines.push(line);
          if (lines.length > MAX_LOG_LINES) lines.shift();
          o.onLine?.(name, line);
        }
      });
    }
    child.once('exit', (code) => {
      if (!stopping) onExit({ name, code });
    });
  };
  const failed = new Promise<never>((_resolve, reject) => {
    void exited.then(({ name, code }) => reject(new Error(`${name} exited with ${code} while starting:\n${(logs.get(name) ?? []).slice(-20).join('\n')}`)));
    o.signal?.addEventListener('abort', () => reject(new Error('interrupted while starting')), { once: true });
  });
  failed.catch(() => undefined);
  const step = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);

  try {
    if (o.tls) certs = makeCertificates();
    const { file, ports } = writeConfig({ tls: o.tls, dir, ports: o.ports ?? {}, certs });
    const wanted: Array<[number, string]> = [
      [ports.proxy, 'the sidecar (--port)'], [ports.admin, "the sidecar's admin (--admin-port)"],
      [ports.greeter, 'the greeter (--service-port)'], [ports.mirror, 'the greeter mirror (--service-port + 1)'],
    ];
    for (const [port, what] of wanted) {
      if (!(await portFree(port))) throw new Error(`port ${port}, for ${what}, is already in use on 127.0.0.1; stop what holds it or choose another port`);
    }
    const service = distFile('examples', 'grpc-mirror', 'service.js');
    launch('greeter', [service, '--name', 'greeter', '--port', String(ports.greeter)]);
    launch('greeter-mirror', [service, '--name', 'greeter-mirror', '--port', String(ports.mirror)]);
    await step(Promise.all([waitForPort(ports.greeter, 10_000), waitForPort(ports.mirror, 10_000)]));
    const cli = distFile('src', 'cli.js');
    const args = ['proxy', '-c', file, '--log-level', o.logLevel ?? 'warn', '--drain-time-s', '1'];
    launch('sidecar', [...proxyExecArgv([], process.env.NODE_OPTIONS), cli, ...args], proxyEnv(process.env));
    await step(waitForPort(ports.proxy, 30_000));
    return {
      ports,
      tls: o.tls,
      caFile: certs?.caFile ?? null,
      configFile: file,
      sidecarCommand: `node ${path.relative(process.cwd(), cli) || cli} ${args.join(' ')}`,
      exited,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
