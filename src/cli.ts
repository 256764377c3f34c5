#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError } from './config/errors';
import type { ControlPlane } from './control-plane/main';
import { parseHostPort } from './util/host-port';
import { type XdsTlsFiles, readXdsTls } from './control-plane/server/xds-tls';
import { loadBootstrapFile } from './config/load';
import * as os from 'node:os';
import { type Logger, createLogger, silentLogger } from './log/logger';
import { listenerHooks } from './config/hook-refs';
import { HookDirs } from './shadow/hook-dirs';
import { MirrorResources } from './shadow/resources';
import { BearerToken } from './util/bearer-token';
import type { WorkerProxyOptions } from './workers/messages';
import type { Supervisor } from './workers/supervisor';
import { Proxy } from './proxy';
import { version } from './version';

// argv → proxy | validate. The only file that calls process.exit.

const USAGE = `sidemirror ${version}

Usage:
  sidemirror proxy -c envoy.yaml [--concurrency 1|N|auto] [--log-level info] [--drain-time-s 5]
                   [--shadow-max-inflight 1000] [--shadow-max-buffer-bytes 1048576]
                   [--hooks-dir DIR]...
                   [--shadow-max-total-inflight 10000] [--shadow-max-total-buffer-bytes 67108864]
  sidemirror control-plane -c resources.yaml [--listen 127.0.0.1:18000] [--admin 127.0.0.1:18001]
                   [--admin-token-file FILE] [--xds-token-file FILE] [--max-message-bytes 4194304]
                   [--tls-cert FILE --tls-key FILE [--client-ca FILE]]
  sidemirror validate -c envoy.yaml [--hooks-dir DIR]...

  --hooks-dir DIR   mirror hook modules may be loaded from DIR (repeatable); without it, a
                    configuration naming any hook is refused
  --tls-cert FILE --tls-key FILE
                    the control plane serves xDS over TLS with this PEM certificate and key
  --client-ca FILE  and requires every xDS client to present a certificate this CA verifies
  sidemirror --version
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        config: { type: 'string', short: 'c' },
        'config-path': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        'drain-time-s': { type: 'string', default: '5' },
        'shadow-max-inflight': { type: 'string' },
        'shadow-max-buffer-bytes': { type: 'string' },
        'shadow-max-total-inflight': { type: 'string' },
        'shadow-max-total-buffer-bytes': { type: 'string' },
        concurrency: { type: 'string', default: '1' },
        listen: { type: 'string', default: '127.0.0.1:18000' },
        admin: { type: 'string' },
        'hooks-dir': { type: 'string', multiple: true, default: [] },
        'admin-token-file': { type: 'string' },
        'xds-token-file': { type: 'string' },
        'max-message-bytes': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const file = (values.config ?? values['config-path']) as string | undefined;
  if (!file) {
    process.stderr.write(`-c FILE is required\n\n${USAGE}`);
    return 2;
  }
  const flagError = checkCommonFlags(values);
  if (flagError !== null) {
    process.stderr.write(`${flagError}\n`);
    return 2;
  }
  const hookDirs = values['hooks-dir'] as string[];
  switch (command) {
    case 'validate':
      return validate(file, hookDirs);
    case 'proxy':
      return runProxy(file, values);
    case 'control-plane':
      return runControlPlane(file, values);
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

function validate(file: string, dirs: readonly string[]): number {
  let hookDirs: HookDirs;
  try {
    hookDirs = new HookDirs(dirs);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  try {
    const loaded = loadBootstrapFile(file);
    const issues = new MirrorResources(silentLogger(), hookDirs).checkHooks(listenerHooks(loaded.bootstrap.listeners));
    if (issues.length > 0) throw new ConfigError(issues);
    process.stdout.write(`configuration '${file}' OK\n`);
    return 0;
  } catch (err) {
    return reportConfigError(file, err);
  }
}

function reportConfigError(file: string, err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`${file}: ${err.issues.length} error(s)\n`);
    for (const i of err.issues) process.stderr.write(`  ${i.path || '(root)'}: ${i.message}\n`);
    return 1;
  }
  process.stderr.write(`${file}: ${(err as Error).message}\n`);
  return 1;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The flags every command shares, checked before anything starts: one line saying what is wrong, or null. */
function checkCommonFlags(values: Record<string, unknown>): string | null {
  const level = String(values['log-level']);
  if (!LOG_LEVELS.includes(level)) return `--log-level must be one of ${LOG_LEVELS.join(', ')}; got "${level}"`;
  const drain = String(values['drain-time-s']);
  if (!/^\d+(\.\d+)?$/.test(drain.trim())) return `--drain-time-s must be a number of seconds (0 or more); got "${drain}"`;
  for (const flag of ['listen', 'admin']) {
    if (values[flag] === undefined) continue;
    try {
      parseHostPort(String(values[flag]), '127.0.0.1');
    } catch (err) {
      return `--${flag}: ${(err as Error).message}`;
    }
  }
  return null;
}

function positiveInt(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
}

function workerCount(value: unknown): number {
  if (value === 'auto') return os.availableParallelism();
  const n = positiveInt(value ?? '1', 'concurrency');
  return n ?? 1;
}

async function runProxy(file: string, values: Record<string, string | boolean | string[] | undefined>): Promise<number> {
  const logger = createLogger(String(values['log-level']));
  let proxy: Proxy;
  let workers: number;
  let proxyOptions: WorkerProxyOptions;
  let hookDirs: HookDirs;
  try {
    hookDirs = new HookDirs(values['hooks-dir'] as string[]);
    workers = workerCount(values.concurrency);
    proxyOptions = {
      drainTimeoutMs: Number(values['drain-time-s']) * 1000,
      hookDirs: values['hooks-dir'] as string[],
      shadowLimits: {
        maxInFlightPerCluster: positiveInt(values['shadow-max-inflight'], 'shadow-max-inflight'),
        maxBufferedBodyBytes: positiveInt(values['shadow-max-buffer-bytes'], 'shadow-max-buffer-bytes'),
        maxInFlightTotal: positiveInt(values['shadow-max-total-inflight'], 'shadow-max-total-inflight'),
        maxTotalBufferedBodyBytes: positiveInt(values['shadow-max-total-buffer-bytes'], 'shadow-max-total-buffer-bytes'),
      },
    };
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (workers > 1) return runSupervisor(file, workers, proxyOptions, values, logger);
  try {
    const loaded = loadBootstrapFile(file);
    proxy = await Proxy.start({ loaded, logger, ...proxyOptions, hookDirs, commandLine: { config_path: file, ...values } });
  } catch (err) {
    return reportConfigError(file, err);
  }
  for (const l of proxy.listeners.listeners()) {
    logger.info({ listener: l.name, port: l.address.port }, 'serving');
  }
  return serveUntilSignalled(logger, () => proxy.stop(), () => proxy.reloadFile(file), (stop) => proxy.onQuit(() => stop('quitquitquit')),
    () => proxy.reopenAccessLogs());
}

async function runControlPlane(file: string, values: Record<string, string | boolean | string[] | undefined>): Promise<number> {
  const logger = createLogger(String(values['log-level']));
  let cp: ControlPlane;
  let security: { adminToken?: BearerToken; xdsToken?: BearerToken; maxMessageBytes?: number; xdsTls?: XdsTlsFiles };
  try {
    const adminTokenFile = values['admin-token-file'] as string | undefined;
    const xdsTokenFile = values['xds-token-file'] as string | undefined;
    security = {
      adminToken: adminTokenFile !== undefined ? BearerToken.fromFile(adminTokenFile, '--admin-token-file') : undefined,
      xdsToken: xdsTokenFile !== undefined ? BearerToken.fromFile(xdsTokenFile, '--xds-token-file') : undefined,
      maxMessageBytes: positiveInt(values['max-message-bytes'], 'max-message-bytes'),
      xdsTls: xdsTlsFlags(values),
    };
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  try {
    // Loaded for this command only: the proxy never pays for the control plane's gRPC server.
    const { startControlPlane } = require('./control-plane/main') as typeof import('./control-plane/main');
    cp = await startControlPlane({
      resourcesFile: file,
      listen: parseHostPort(String(values.listen), '127.0.0.1'),
      admin: values.admin ? parseHostPort(String(values.admin), '127.0.0.1') : undefined,
      logger,
      ...security,
    });
  } catch (err) {
    return reportConfigError(file, err);
  }
  logger.info({ port: cp.port, admin: cp.adminPort }, 'control plane serving');
  return new Promise<number>((resolve) => {
    const stop = (): void => void cp.close().then(() => resolve(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

/** --tls-cert, --tls-key and --client-ca, checked (files read, key fits the certificate); undefined without them. */
function xdsTlsFlags(values: Record<string, unknown>): XdsTlsFiles | undefined {
  const certFile = values['tls-cert'] as string | undefined;
  const keyFile = values['tls-key'] as string | undefined;
  const clientCaFile = values['client-ca'] as string | undefined;
  if (certFile === undefined && keyFile === undefined) {
    if (clientCaFile !== undefined) throw new Error('--client-ca needs --tls-cert and --tls-key');
    return undefined;
  }
  if (certFile === undefined) throw new Error('--tls-key needs --tls-cert');
  if (keyFile === undefined) throw new Error('--tls-cert needs --tls-key');
  const files: XdsTlsFiles = { certFile, keyFile, ...(clientCaFile !== undefined ? { clientCaFile } : {}) };
  readXdsTls(files);
  return files;
}

/** `--concurrency N`: this process supervises N workers that share the listeners. */
async function runSupervisor(file: string, workers: number, proxy: WorkerProxyOptions, values: Record<string, unknown>, logger: Logger): Promise<number> {
  // Loaded for --concurrency only (the supervisor speaks xDS to its workers, over gRPC).
  const { Supervisor: SupervisorClass } = require('./workers/supervisor') as typeof import('./workers/supervisor');
  let supervisor: Supervisor;
  try {
    supervisor = new SupervisorClass({ configFile: file, workers, logger, proxy, commandLine: { config_path: file, ...values } });
    await supervisor.start();
  } catch (err) {
    return reportConfigError(file, err);
  }
  logger.info({ workers }, 'serving with worker processes');
  return serveUntilSignalled(logger, () => supervisor.stop(), async () => supervisor.reload(), undefined, () => supervisor.reopenAccessLogs());
}

/**
 * Runs until SIGTERM/SIGINT (drain, then exit 0); SIGHUP reloads, and a rejected reload is
 * logged with every issue while the running config stays; SIGUSR1 reopens the access log files.
 */
function serveUntilSignalled(logger: Logger, stop: () => Promise<void>, reload: () => Promise<void>,
  extraStop?: (stop: (why: string) => void) => void, reopenLogs?: () => void): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const drain = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal: why }, 'draining');
      void stop().then(() => resolve(0));
    };
    extraStop?.(drain);
    process.on('SIGTERM', () => drain('SIGTERM'));
    process.on('SIGINT', () => drain('SIGINT'));
    // Envoy's signal for logrotate; a listener here also keeps Node from starting its inspector on it.
    if (reopenLogs) process.on('SIGUSR1', reopenLogs);
    process.on('SIGHUP', () => {
      reload().catch((err: unknown) => {
        const detail = err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`) : [(err as Error).message];
        logger.error({ errors: detail }, 'SIGHUP reload rejected; the previous configuration stays');
      });
    });
  });
}

/**
 * A promise rejected with nobody waiting (a hook module's own async code, say) would end the
 * process by Node's default, and with it every request in flight: a sidecar logs it and serves
 * on. At most one line per 10 s, with the number suppressed meanwhile.
 */
function keepServingOnUnhandledRejection(logger: Logger): void {
  let last = -Infinity;
  let suppressed = 0;
  process.on('unhandledRejection', (reason: unknown) => {
    const now = Date.now();
    if (now - last < 10_000) {
      suppressed++;
      return;
    }
    logger.error({ err: reason instanceof Error ? reason.message : String(reason), suppressed }, 'unhandled promise rejection; serving on');
    last = now;
    suppressed = 0;
  });
}

if (process.env.SIDEMIRROR_ROLE === 'worker') {
  const logger = createLogger(process.env.SIDEMIRROR_LOG_LEVEL);
  keepServingOnUnhandledRejection(logger);
  (require('./workers/worker') as typeof import('./workers/worker')).runWorker(logger);
} else {
  keepServingOnUnhandledRejection(createLogger(process.env.SIDEMIRROR_LOG_LEVEL ?? 'warn'));
  start();
}

function start(): void {
  void main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Flush logs, then leave even if a keep-alive socket lingers.
      setTimeout(() => process.exit(code), 50).unref();
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
