import { request } from 'undici';
import { loadBootstrapText } from '../../src/config/load';
import { silentLogger } from '../../src/log/logger';
import { Proxy, type ProxyOptions } from '../../src/proxy';

export interface TestProxy {
  readonly proxy: Proxy;
  /** Port of the first listener. */
  readonly port: number;
  /** `http://127.0.0.1:<port>` of the first listener. */
  readonly url: string;
  /** `http://127.0.0.1:<admin port>`, when the bootstrap has an admin block. */
  readonly adminUrl: string;
  stop(): Promise<void>;
}

/** Starts a proxy in this process from bootstrap text; stop it with the returned handle. */
export async function startProxy(text: string, options: Partial<Omit<ProxyOptions, 'loaded'>> = {}): Promise<TestProxy> {
  const proxy = await Proxy.start({ loaded: loadBootstrapText(text), logger: silentLogger(), drainTimeoutMs: 500, ...options });
  const first = proxy.listeners.listeners()[0];
  const port = first?.address.port ?? 0;
  const admin = proxy.adminAddress();
  return {
    proxy,
    port,
    url: `http://127.0.0.1:${port}`,
    adminUrl: admin ? `http://127.0.0.1:${admin.port}` : '',
    stop: () => proxy.stop(),
  };
}

/** GET or POST through undici, returning status, headers and body text; timing in ms. */
export async function fetchText(url: string, opts: Parameters<typeof request>[1] = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; ms: number }> {
  const started = performance.now();
  const res = await request(url, opts);
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body, ms: performance.now() - started };
}

/** Reads one counter from the admin's /stats text (0 when absent). */
export async function statValue(adminUrl: string, name: string): Promise<number> {
  const { body } = await fetchText(`${adminUrl}/stats`);
  const line = body.split('\n').find((l) => l.startsWith(`${name}: `));
  return line ? Number(line.slice(name.length + 2)) : 0;
}
