import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

// Every process the bench starts runs in its own process group (detached) and is registered here,
// so a stop, an exit or a Ctrl-C can kill the whole group (nginx master + workers, node + workers).

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function which(cmd: string): boolean {
  return spawnSync('which', [cmd], { stdio: 'ignore' }).status === 0;
}

/** First line of a command's stdout+stderr (for `nginx -v`, `wrk -v`). */
export function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]?.trim() ?? '';
}

export function makeTempDir(label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sidemirror-bench-${label}-`));
  fs.chmodSync(dir, 0o755); // nginx workers may run as nobody when the bench runs as root
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) once the process has exited and its output is read. */
  readonly exited: Promise<number | string>;
  readonly stdout: () => string;
}

/** `cpus` → run under `taskset -c cpus` (taskset execs, so the pid is the command's). */
export function spawnTracked(cmd: string, args: string[], opts: { cpus?: string; logFile?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Spawned {
  const [file, argv] = opts.cpus !== undefined ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, args];
  const out = opts.logFile !== undefined ? fs.openSync(opts.logFile, 'a') : 'pipe';
  const child = spawn(file, argv, { detached: true, stdio: ['ignore', out, out], cwd: opts.cwd, env: opts.env === undefined ? process.env : { ...process.env, ...opts.env } });
  if (typeof out === 'number') fs.closeSync(out);
  if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
  live.add(child);
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.on('exit', () => live.delete(child));
  // 'close' comes after 'exit' once stdout/stderr are drained, so stdout() is complete by then.
  const exited = new Promise<number | string>((resolve) => {
    child.on('close', (code, signal) => resolve(code ?? signal ?? -1));
  });
  child.on('error', () => live.delete(child));
  return { child, pid: child.pid, exited, stdout: () => text };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM to the group, SIGKILL after `graceMs`; resolves when the leader has exited. */
export async function stopProcess(p: Spawned, graceMs = 3000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) {
    killGroup(p.pid, 'SIGKILL'); // leader gone; make sure no worker lingers
    return;
  }
  killGroup(p.pid, 'SIGTERM');
  const done = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
  killGroup(p.pid, 'SIGKILL');
  if (!done) await Promise.race([p.exited, sleep(1000)]);
}

/** Synchronous last-resort cleanup: kill every group still alive, remove temp dirs. */
export function cleanupAll(): void {
  for (const c of live) if (c.pid !== undefined) killGroup(c.pid, 'SIGKILL');
  live.clear();
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
    s.once('timeout', () => (s.destroy(), resolve(false)));
  });
}

/** Waits until 127.0.0.1:port accepts; fails early if `p` exits. */
export async function waitForPort(port: number, p: Spawned | undefined, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p && (p.child.exitCode !== null || p.child.signalCode !== null)) {
      throw new Error(`process exited (${p.child.exitCode ?? p.child.signalCode}) before listening on ${port}`);
    }
    if (await tryConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** GET http://127.0.0.1:port/path → body text (bounded by a timeout). */
export function httpGetText(port: number, urlPath: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET :${port}${urlPath} timed out`)));
    req.on('error', reject);
  });
}

export interface ServerProcess {
  readonly proc: Spawned;
  /** Its own temp directory, removed on stop. */
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * Starts a server process in a temp directory of its own and waits for its port. On failure it
 * stops the process, removes the directory and throws with the tail of the named log files.
 */
export async function startServer(o: {
  label: string;
  port: number;
  cpus?: string;
  /** The command and its arguments, given the temp directory (configs and logs go there). */
  command: (dir: string) => { cmd: string; args: string[]; env?: NodeJS.ProcessEnv };
  /** Log files (relative to the directory) worth showing when the start fails; the first takes stdout/stderr. */
  logs: string[];
}): Promise<ServerProcess> {
  const dir = makeTempDir(o.label);
  const { cmd, args, env } = o.command(dir);
  const proc = spawnTracked(cmd, args, { cpus: o.cpus, logFile: path.join(dir, o.logs[0]!), env });
  const stop = async (): Promise<void> => {
    await stopProcess(proc);
    removeTempDir(dir);
  };
  try {
    await waitForPort(o.port, proc);
  } catch (err) {
    const out = o.logs.map((f) => {
      try {
        return fs.readFileSync(path.join(dir, f), 'utf8').slice(-2000);
      } catch {
        return '';
      }
    }).join('');
    await stop();
    throw new Error(`${o.label}: ${(err as Error).message}${out ? `\n${out}` : ''}`);
  }
  return { proc, dir, stop };
}
