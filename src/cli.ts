#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError } from './config/errors';
import { loadBootstrapFile } from './config/load';
import { createLogger } from './log/logger';
import { Proxy } from './proxy';
import { version } from './version';

// argv → proxy | validate. The only file that calls process.exit.

const USAGE = `sidemirror ${version}

Usage:
  sidemirror proxy -c envoy.yaml [--log-level info] [--drain-time-s 5]
                   [--shadow-max-inflight 1000] [--shadow-max-buffer-bytes 1048576]
  sidemirror validate -c envoy.yaml
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
  let values: Record<string, string | boolean | undefined>;
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
  switch (command) {
    case 'validate':
      return validate(file);
    case 'proxy':
      return runProxy(file, values);
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

function validate(file: string): number {
  try {
    loadBootstrapFile(file);
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

function positiveInt(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
}

async function runProxy(file: string, values: Record<string, string | boolean | undefined>): Promise<number> {
  const logger = createLogger(String(values['log-level']));
  let proxy: Proxy;
  try {
    const loaded = loadBootstrapFile(file);
    proxy = await Proxy.start({
      loaded,
      logger,
      drainTimeoutMs: Number(values['drain-time-s']) * 1000,
      shadowLimits: {
        maxInFlightPerCluster: positiveInt(values['shadow-max-inflight'], 'shadow-max-inflight'),
        maxBufferedBodyBytes: positiveInt(values['shadow-max-buffer-bytes'], 'shadow-max-buffer-bytes'),
      },
      commandLine: { config_path: file, ...values },
    });
  } catch (err) {
    return reportConfigError(file, err);
  }
  for (const l of proxy.listeners.listeners()) {
    logger.info({ listener: l.name, port: l.address.port }, 'serving');
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'draining');
      void proxy.stop().then(() => resolve(0));
    };
    proxy.onQuit(() => stop('quitquitquit'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      proxy.reloadFile(file).catch((err: unknown) => {
        const detail = err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`) : [(err as Error).message];
        logger.error({ errors: detail }, 'SIGHUP reload rejected; the previous configuration stays');
      });
    });
  });
}

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
