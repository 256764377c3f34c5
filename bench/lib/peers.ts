import * as fs from 'node:fs';
import * as path from 'node:path';
import { grpcProxyConf, proxyConf, startNginx } from './nginx';
import { freePort, startServer } from './processes';
import { proxyEnv, proxyExecArgv } from '../../src/workers/heap-flags';
import type { Http1Codec } from '../../src/util/native-http';
import { sidemirrorBootstrap } from './sidemirror';

// The peers under test. Each start() brings up a fresh proxy pinned to `cpus`, in front of the
// PRIMARY upstream and (for mirror peers) the given shadow, and returns the pid whose process
// tree is measured. The HTTP/2 rows use peers of the same names (`h2cPeers`, `grpcPeers`), so
// the table lines them up with the HTTP/1.1 ones.

export interface PeerEnv {
  primaryPort: number;
  primaryPid: number;
  shadowPort: number;
  cpus?: string;
  /** Flags for node itself, before the script (e.g. --trace-gc, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  /** Extra environment for the peer process (e.g. MALLOC_ARENA_MAX, which must be set before it starts). */
  env?: NodeJS.ProcessEnv;
}

export interface RunningPeer {
  readonly port: number;
  readonly pid: number;
  /** sidemirror peers started with an admin listener (sidemirrorConfigPeer). */
  readonly adminPort?: number;
  stop(): Promise<void>;
}

export interface PeerDef {
  readonly name: string;
  readonly mirror: boolean;
  /** false for `direct`, whose measured process (PRIMARY) runs on the load core. */
  readonly onPeerCore?: boolean;
  /** sidemirror peers: the HTTP/1.1 codec they are started with (SIDEMIRROR_HTTP1_CODEC). */
  readonly codec?: Http1Codec;
  /** sidemirror peers: --concurrency (1: one process, no supervisor). */
  readonly workers?: number;
  /** Each round also records the CPU of every process in the tree by role (supervisor, workers). */
  readonly perProcessCpu?: boolean;
  start(env: PeerEnv): Promise<RunningPeer>;
}

const distRoot = path.join(__dirname, '..', '..'); // dist/

/** Starts a node script, waits for its port; on failure prints the log and cleans up. */
async function startNode(label: string, script: string, args: (port: number, dir: string) => string[], cpus?: string, nodeArgs: string[] = [], env?: NodeJS.ProcessEnv): Promise<RunningPeer> {
  const port = await freePort();
  const server = await startServer({ label, port, cpus, logs: ['out.log'], command: (dir) => ({ cmd: process.execPath, args: [...nodeArgs, script, ...args(port, dir)], env }) });
  return { port, pid: server.proc.pid, stop: server.stop };
}

function nginxPeer(name: string, mirror: boolean): PeerDef {
  return {
    name,
    mirror,
    async start(env) {
      const port = await freePort();
      const conf = (prefix: string): string => proxyConf(prefix, port, env.primaryPort, mirror ? env.shadowPort : undefined);
      const n = await startNginx(name, conf, port, env.cpus);
      return { port, pid: n.proc.pid, stop: () => n.stop() };
    },
  };
}

function nginxGrpcPeer(name: string, mirror: boolean): PeerDef {
  return {
    name,
    mirror,
    async start(env) {
      const port = await freePort();
      const conf = (prefix: string): string => grpcProxyConf(prefix, port, env.primaryPort, mirror ? env.shadowPort : undefined);
      const n = await startNginx(`grpc-${name}`, conf, port, env.cpus);
      return { port, pid: n.proc.pid, stop: () => n.stop() };
    },
  };
}

/** sidemirror's bootstrap for one start: its listener port, its admin port and the peer's environment. */
export type SidemirrorBootstrap = (port: number, adminPort: number, env: PeerEnv) => string;

/**
 * Every sidemirror the bench starts is told its codec, so a SIDEMIRROR_HTTP1_CODEC left in the
 * bench's own environment cannot put the fallback into rows labelled with the fast codec.
 */
function startSidemirror(name: string, env: PeerEnv, bootstrap: (port: number) => string, concurrency = 1, codec: Http1Codec = 'fast'): Promise<RunningPeer> {
  const cli = path.join(distRoot, 'src', 'cli.js');
  return startNode(
    name,
    cli,
    (port, dir) => {
      const file = path.join(dir, 'bootstrap.json');
      fs.writeFileSync(file, bootstrap(port));
      const args = ['proxy', '-c', file, '--log-level', 'warn'];
      if (concurrency > 1) args.push('--concurrency', String(concurrency));
      return args;
    },
    env.cpus,
    // As the Dockerfile and the sandbox start it: the young generation sized for shadows, two malloc arenas.
    proxyExecArgv(env.nodeArgs ?? [], process.env.NODE_OPTIONS),
    { ...proxyEnv({ ...process.env, ...env.env }), SIDEMIRROR_HTTP1_CODEC: codec, ...env.env },
  );
}

/** `http2`: the clusters speak HTTP/2 (h2c) to the upstreams; downstream is AUTO either way. */
function sidemirrorPeer(name: string, mirror: boolean, concurrency = 1, http2 = false, codec: Http1Codec = 'fast'): PeerDef {
  return {
    name,
    mirror,
    codec,
    workers: concurrency,
    start: (env) => startSidemirror(name, env, (port) => sidemirrorBootstrap(port, env.primaryPort, mirror ? env.shadowPort : undefined, http2), concurrency, codec),
  };
}

/** The name of a sidemirror row on the node:http codec: `sidemirror-mirror-node-http`. */
export const NODE_CODEC_SUFFIX = '-node-http';

/** The fast-shadow sidemirror peers (no mirror, Envoy mirror) on `codec`. */
export function sidemirrorH1Peers(codec: Http1Codec): PeerDef[] {
  const suffix = codec === 'node' ? NODE_CODEC_SUFFIX : '';
  return [sidemirrorPeer(`sidemirror${suffix}`, false, 1, false, codec), sidemirrorPeer(`sidemirror-mirror${suffix}`, true, 1, false, codec)];
}

/** sidemirror with the Envoy mirror policy and `--concurrency workers` (the multi-core mode's rows). */
export function sidemirrorMirrorWorkers(workers: number): PeerDef {
  return { ...sidemirrorPeer(`sidemirror-mirror-w${workers}`, true, workers), perProcessCpu: true };
}

/** sidemirror with a bootstrap of the caller's, and an admin listener on a port of its own. */
export function sidemirrorConfigPeer(name: string, mirror: boolean, bootstrap: SidemirrorBootstrap): PeerDef {
  return {
    name,
    mirror,
    codec: 'fast',
    async start(env) {
      const adminPort = await freePort();
      const running = await startSidemirror(name, env, (port) => bootstrap(port, adminPort, env));
      return { ...running, adminPort };
    },
  };
}

export const direct: PeerDef = {
  name: 'direct',
  mirror: false,
  onPeerCore: false,
  // wrk straight at PRIMARY: nothing to start, PRIMARY's own tree is measured.
  start: async (env) => ({ port: env.primaryPort, pid: env.primaryPid, stop: async () => undefined }),
};

export const nginxProxy = nginxPeer('nginx-proxy', false);
export const nginxMirror = nginxPeer('nginx-mirror', true);
export const sidemirror = sidemirrorPeer('sidemirror', false);
export const sidemirrorMirror = sidemirrorPeer('sidemirror-mirror', true);
export const sidemirrorMirrorC2: PeerDef = { ...sidemirrorPeer('sidemirror-mirror-c2', true, 2), perProcessCpu: true };

export const httpProxyMirror: PeerDef = {
  name: 'node-http-proxy-mirror',
  mirror: true,
  start: (env) =>
    startNode(
      'node-http-proxy-mirror',
      path.join(distRoot, 'bench', 'peers', 'http-proxy-mirror.js'),
      (port) => ['--port', String(port), '--primary', String(env.primaryPort), '--shadow', String(env.shadowPort)],
      env.cpus,
    ),
};

const sidemirrorH2 = sidemirrorPeer('sidemirror', false, 1, true);
const sidemirrorMirrorH2 = sidemirrorPeer('sidemirror-mirror', true, 1, true);

/**
 * h2c GET: direct to nginx on h2c, through sidemirror (h2c both sides) with and without a mirror.
 * No nginx peer: nginx proxies to HTTP/2 upstreams only with grpc_pass.
 */
export const h2cPeers: readonly PeerDef[] = [direct, sidemirrorH2, sidemirrorMirrorH2];

/** gRPC unary: direct to grpc-js, nginx grpc_pass (and its mirror), sidemirror without and with a mirror. */
export const grpcPeers: readonly PeerDef[] = [direct, nginxGrpcPeer('nginx-proxy', false), nginxGrpcPeer('nginx-mirror', true), sidemirrorH2, sidemirrorMirrorH2];
