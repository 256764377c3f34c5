// Real redis-server processes for tests, each stopped by its own handle. Talks RESP over a plain
// socket so that src/shadow/limit/redis.ts stays the only importer of ioredis.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { TestCertificates } from './certs';
import { closedPort } from './upstream';

/** How a test client reaches a Redis: its port, the credentials to AUTH with, TLS. */
export interface RedisEndpoint {
  readonly port: number;
  readonly auth?: { readonly username?: string; readonly password: string };
  /** Connect over TLS, verifying the server against `ca`; `cert`/`key` when it asks for a client certificate. */
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
}

export interface TestRedisOptions {
  /** A fixed port (e.g. to restart on the same one). */
  readonly port?: number;
  /** The default user's password (`--requirepass`). */
  readonly requirepass?: string;
  /** ACL users with every permission on every key (`--user NAME on >PASSWORD ~* &* +@all`). */
  readonly users?: ReadonlyArray<{ readonly name: string; readonly password: string }>;
  /** Serve TLS only (`--port 0 --tls-port`), with these certificates. */
  readonly tls?: TestCertificates;
  /** With tls: require a client certificate signed by the CA (`--tls-auth-clients yes`). */
  readonly tlsAuthClients?: boolean;
}

export interface TestRedis {
  readonly port: number;
  /** The port with the default user's password and TLS, as the harness itself connects. */
  readonly endpoint: RedisEndpoint;
  /** SIGSTOP / SIGCONT: a Redis that accepts connections but never answers. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface TestRedisCluster {
  readonly ports: readonly number[];
  stop(): Promise<void>;
}

function requireOnPath(binary: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${binary} is not on PATH; the Redis mirror-limit tests need a real Redis: apt-get install -y redis-server`);
}

/** A port that was free a moment ago (bind 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A free port below the kernel's ephemeral range, for a process that binds it later (see closedPort). */
export const freeLowPort = closedPort;

function encode(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** Length of one complete simple/error/integer/bulk reply at the start of buf, or -1 if incomplete. */
function replyLength(buf: Buffer): number {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return -1;
  if (buf[0] !== 0x24 /* $ */) return eol + 2;
  const len = Number(buf.subarray(1, eol).toString());
  if (len < 0) return eol + 2;
  return buf.length >= eol + 2 + len + 2 ? eol + 2 + len + 2 : -1;
}

/** Reads whole replies off a socket, one at a time. */
function replyReader(socket: net.Socket): () => Promise<string | null> {
  let buf = Buffer.alloc(0);
  let waiting: ((value: string | null) => void) | null = null;
  const take = (): boolean => {
    const n = replyLength(buf);
    if (n < 0 || !waiting) return false;
    const eol = buf.indexOf('\r\n');
    const kind = String.fromCharCode(buf[0] ?? 0);
    let value: string | null;
    if (kind === '$') {
      const len = Number(buf.subarray(1, eol).toString());
      value = len < 0 ? null : buf.subarray(eol + 2, eol + 2 + len).toString();
    } else if (kind === '-') {
      value = buf.subarray(0, eol).toString();
    } else {
      value = buf.subarray(1, eol).toString();
    }
    buf = buf.subarray(n);
    const w = waiting;
    waiting = null;
    w(value);
    return true;
  };
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    take();
  });
  return () => new Promise((resolve) => {
    waiting = resolve;
    take();
  });
}

/**
 * Sends one command (after AUTH, when the endpoint has credentials) and returns its reply as
 * text: simple strings, errors ("-ERR ..."), integers and bulk strings (null bulk → null).
 * Bounded by timeoutMs.
 */
export async function redisCommand(to: number | RedisEndpoint, args: readonly string[], timeoutMs = 2000): Promise<string | null> {
  const ep: RedisEndpoint = typeof to === 'number' ? { port: to } : to;
  const socket = ep.tls
    ? tls.connect({ port: ep.port, host: '127.0.0.1', ca: ep.tls.ca, cert: ep.tls.cert, key: ep.tls.key, servername: 'localhost' })
    : net.connect(ep.port, '127.0.0.1');
  const next = replyReader(socket);
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`redis on port ${ep.port}: no reply to ${args[0]} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', reject);
  });
  // An error after the reply (a TLS alert while the socket closes) must not surface as an unhandled rejection.
  failed.catch(() => undefined);
  const run = async (): Promise<string | null> => {
    await new Promise<void>((resolve) => socket.once(ep.tls ? 'secureConnect' : 'connect', () => resolve()));
    if (ep.auth) {
      socket.write(encode(['AUTH', ...(ep.auth.username ? [ep.auth.username] : []), ep.auth.password]));
      const ok = await next();
      if (ok !== 'OK') return ok;
    }
    socket.write(encode(args));
    return next();
  };
  try {
    return await Promise.race([run(), failed]);
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

async function waitUntil(what: string, deadlineMs: number, check: () => Promise<boolean>, exited: () => string | null): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const exit = exited();
    if (exit !== null) throw new Error(`${what}: ${exit}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Spawned {
  readonly child: ChildProcess;
  exitMessage(): string | null;
  stop(): Promise<void>;
}

function spawnRedis(bin: string, args: readonly string[]): Spawned {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exit: string | null = null;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = `redis-server exited (code ${code}, signal ${signal}): ${output.trim().split('\n').slice(-5).join(' | ')}`;
      resolve();
    });
    child.once('error', (err) => {
      exit = `redis-server failed to start: ${err.message}`;
      resolve();
    });
  });
  return {
    child,
    exitMessage: () => exit,
    async stop() {
      if (exit !== null) return;
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const BASE_ARGS = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];

function securityArgs(o: TestRedisOptions, port: number): string[] {
  const args: string[] = [];
  if (o.requirepass !== undefined) args.push('--requirepass', o.requirepass);
  for (const u of o.users ?? []) args.push('--user', u.name, 'on', `>${u.password}`, '~*', '&*', '+@all');
  if (o.tls) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', o.tls.serverCertFile, '--tls-key-file', o.tls.serverKeyFile,
      '--tls-ca-cert-file', o.tls.caFile, '--tls-auth-clients', o.tlsAuthClients ? 'yes' : 'no');
  } else {
    args.push('--port', String(port));
  }
  return args;
}

/**
 * Starts redis-server on a free port (or the given one, e.g. to restart), with a password, ACL
 * users and TLS when asked, and waits until it answers PING.
 */
export async function startRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const bin = requireOnPath('redis-server');
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidemirror-redis-'));
  const endpoint: RedisEndpoint = {
    port,
    ...(options.requirepass !== undefined ? { auth: { password: options.requirepass } } : {}),
    ...(options.tls ? {
      tls: {
        ca: options.tls.ca,
        ...(options.tlsAuthClients ? { cert: readFileSync(options.tls.clientCertFile, 'utf8'), key: readFileSync(options.tls.clientKeyFile, 'utf8') } : {}),
      },
    } : {}),
  };
  const proc = spawnRedis(bin, [...securityArgs(options, port), '--dir', dir, ...BASE_ARGS]);
  const stop = async (): Promise<void> => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(`redis-server on port ${port}`, 10_000, async () => (await redisCommand(endpoint, ['PING'], 500)) === 'PONG', proc.exitMessage);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    endpoint,
    pause: () => proc.child.kill('SIGSTOP'),
    resume: () => proc.child.kill('SIGCONT'),
    stop,
  };
}

/**
 * Three masters (no replicas) on free ports, joined with `redis-cli --cluster create`; resolves when
 * every node reports cluster_state:ok and agrees all 16384 slots are assigned.
 */
export async function startRedisCluster(options: { requirepass?: string } = {}): Promise<TestRedisCluster> {
  const pass = options.requirepass;
  const auth = pass !== undefined ? ['--requirepass', pass, '--masterauth', pass] : [];
  const at = (port: number): RedisEndpoint => (pass !== undefined ? { port, auth: { password: pass } } : { port });
  const bin = requireOnPath('redis-server');
  const cli = requireOnPath('redis-cli');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidemirror-redis-cluster-'));
  const ports: number[] = [];
  const procs: Spawned[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Six distinct ports: three client ports, three cluster-bus ports (port + 10000 may not exist).
    const picked = new Set<number>();
    while (picked.size < 6) picked.add(await freePort());
    const all = [...picked];
    for (let i = 0; i < 3; i += 1) {
      const port = all[i]!;
      ports.push(port);
      procs.push(
        spawnRedis(bin, [
          '--port', String(port), '--cluster-port', String(all[i + 3]!), '--dir', dir, ...BASE_ARGS,
          ...auth, '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000',
        ]),
      );
    }
    await Promise.all(
      procs.map((p, i) => waitUntil(`cluster node on port ${ports[i]}`, 10_000, async () => (await redisCommand(at(ports[i]!), ['PING'], 500)) === 'PONG', p.exitMessage)),
    );
    await new Promise<void>((resolve, reject) => {
      execFile(cli, [...(pass !== undefined ? ['-a', pass, '--no-auth-warning'] : []), '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`redis-cli --cluster create failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve(),
      );
    });
    const ok = async (port: number): Promise<boolean> => {
      const info = (await redisCommand(at(port), ['CLUSTER', 'INFO'], 500)) ?? '';
      return info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384') && info.includes('cluster_known_nodes:3');
    };
    await Promise.all(ports.map((port, i) => waitUntil(`cluster node on port ${port}`, 15_000, () => ok(port), procs[i]!.exitMessage)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { ports, stop };
}
