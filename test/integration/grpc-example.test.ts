import { execSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

// `npm run example:grpc` (examples/grpc-mirror) as a user runs it: the built example as a process,
// h2c and TLS, its output and exit code; afterwards nothing it started listens any more and its
// temporary files are gone. --keep runs on until SIGINT.

const ROOT = path.resolve(__dirname, '..', '..');
const SOURCES = path.join(ROOT, 'examples', 'grpc-mirror');
const RUN = path.join(ROOT, 'dist', 'examples', 'grpc-mirror', 'run.js');
const RUN_TIMEOUT_MS = 60_000;

/** Builds when the example's JavaScript is missing or older than one of its sources. */
function ensureBuilt(): void {
  const built = fs.existsSync(RUN) ? fs.statSync(RUN).mtimeMs : 0;
  const stale = fs.readdirSync(SOURCES).filter((f) => f.endsWith('.ts')).some((f) => {
    const js = path.join(path.dirname(RUN), f.replace(/\.ts$/, '.js'));
    return !fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(SOURCES, f)).mtimeMs;
  });
  if (built === 0 || stale) execSync('npm run build', { cwd: ROOT, stdio: 'ignore', timeout: 180_000 });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** True when 127.0.0.1:port can be bound now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * --port, --admin-port and --service-port (which takes N and N+1), all free a moment ago. The
 * pair N, N+1 comes from below Linux's ephemeral range (32768 and up), where no other test's
 * outgoing connection can take N+1 between the check and the example's bind.
 */
async function examplePorts(): Promise<{ proxy: number; admin: number; service: number; all: number[] }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const [proxy, admin] = [await freePort(), await freePort()] as [number, number];
    const service = 20_000 + Math.floor(Math.random() * 12_000);
    const all = [proxy, admin, service, service + 1];
    if (new Set(all).size === 4 && (await bindable(service)) && (await bindable(service + 1))) return { proxy, admin, service, all };
  }
  throw new Error('no free ports');
}

const portArgs = (p: { proxy: number; admin: number; service: number }): string[] =>
  ['--port', String(p.proxy), '--admin-port', String(p.admin), '--service-port', String(p.service)];

interface Started {
  readonly pid: number;
  output(): string;
  /** Resolves with the exit code; the whole process group is killed past the run timeout. */
  readonly exited: Promise<number | null>;
}

/** The example in a process group of its own, so that a run past its time leaves nothing behind. */
function startExample(args: string[]): Started {
  const child = spawn(process.execPath, [RUN, ...args], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
  const exited = new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, RUN_TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  return { pid: child.pid!, output: () => text, exited };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Nothing the example started is left: its ports are closed and its temporary directories gone. */
async function expectCleanedUp(out: string, ports: number[]): Promise<void> {
  for (const port of ports) expect(await listening(port)).toBe(false);
  const dirs = [...out.matchAll(/(\/\S*sidemirror-grpc-example-[^/\s]+)\//g)].map((m) => m[1] as string);
  expect(dirs.length).toBeGreaterThan(0);
  for (const dir of dirs) expect(fs.existsSync(dir)).toBe(false);
}

beforeAll(() => ensureBuilt(), 200_000);

describe('npm run example:grpc', () => {
  test.each([
    ['h2c', []],
    ['TLS', ['--tls']],
  ])('%s: unary, server-streaming and bidi replies from the greeter; the mirror saw each call on the -shadow authority; exit 0, nothing left', async (variant, flags) => {
    const ports = await examplePorts();
    const run = startExample([...flags, ...portArgs(ports)]);
    const code = await run.exited;
    const out = run.output();
    // On failure, the example's own words.
    expect(code === 0 ? 'exit 0' : `exit ${code}:\n${out.slice(-3000)}`).toBe('exit 0');
    if (variant === 'TLS') expect(out).toMatch(/verifying the certificate against the example CA \/\S+\/ca\.crt/);
    for (const reply of ['"Hello, Ada!" from greeter', '"Hello #3, Grace!" from greeter', '"Hello, Edsger!" from greeter']) expect(out).toContain(reply);
    const shadow = `:authority localhost-shadow:${ports.proxy}`;
    for (const seen of ['Greeter/SayHello  ', 'Greeter/SayHelloStream  ', 'Greeter/Chat  ']) {
      expect(out).toMatch(new RegExp(`/sidemirror\\.example\\.v1\\.${seen.replace('/', '\\/')}${shadow}`));
    }
    expect(out).toContain(`OK: the mirror saw all 5 request messages, on ${shadow}`);
    expect(out).toContain('cluster.greeter-mirror.shadow.sent: 3');
    expect(out).toContain('Stopped: the greeter, its mirror and the sidecar have exited.');
    await expectCleanedUp(out, ports.all);
  }, 90_000);

  test('--keep runs on with its addresses printed, and SIGINT to the example alone stops every process', async () => {
    const ports = await examplePorts();
    const run = startExample(['--keep', '--tls', ...portArgs(ports)]);
    await until('the --keep banner', () => run.output().includes('Ctrl-C stops everything.'), RUN_TIMEOUT_MS);
    const out = run.output();
    expect(out).toContain(`sidecar         https://127.0.0.1:${ports.proxy}`);
    expect(out).toContain(`greeter-mirror  127.0.0.1:${ports.service + 1}`);
    for (const port of ports.all) expect(await listening(port)).toBe(true);
    // Only the example gets the signal (a terminal's Ctrl-C reaches the whole group): it stops the rest.
    process.kill(run.pid, 'SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([run.exited, new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), 15_000)))]);
    clearTimeout(timer);
    expect(code).toBe(0);
    await expectCleanedUp(run.output(), ports.all);
  }, 90_000);

  test('a port in use: exit 1 naming the port and its flag, nothing started', async () => {
    const ports = await examplePorts();
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(ports.proxy, '127.0.0.1', resolve));
    try {
      const run = startExample(portArgs(ports));
      expect(await run.exited).toBe(1);
      expect(run.output()).toContain(`port ${ports.proxy}, for the sidecar (--port), is already in use on 127.0.0.1`);
      for (const port of ports.all.slice(1)) expect(await listening(port)).toBe(false);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  }, 60_000);
});
