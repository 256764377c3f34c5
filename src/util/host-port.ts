import { ConfigError } from '../config/errors';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `127.0.0.1:18000`, `[::1]:18000`, `:18000` or `18000` (host defaults to `defaultHost`) → {host, port}. */
export function parseHostPort(text: string, defaultHost = '0.0.0.0'): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text.trim()) ?? /^()()(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError([{ path: '', message: `expected HOST:PORT (e.g. 127.0.0.1:18000), got "${text}"` }]);
  }
  return { host: m[1] || m[2] || defaultHost, port };
}
