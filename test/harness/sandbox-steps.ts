import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { request } from 'undici';
import type { Sandbox, ServiceName } from '../../examples/route-mirror/sandbox';

// The route-mirror sandbox's verify script (/work/shared/sandbox/README.md), step by step, for
// any running sandbox: natively from envoy.yaml, or driven over xDS.

const ROOT = path.resolve(__dirname, '..', '..');
const BUILT = [path.join(ROOT, 'dist', 'src', 'cli.js'), path.join(ROOT, 'dist', 'examples', 'route-mirror', 'service.js')];

/** The sandbox runs the built JavaScript; build it when a bare `npx jest` finds none. */
export function ensureBuilt(): void {
  if (BUILT.some((f) => !fs.existsSync(f))) execSync('npm run build', { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a sandbox on ports found free a moment before; another test's server can take one in
 * between, which the sandbox reports as a busy or unbindable port: then new ports, three tries.
 */
export async function startOnFreePorts(start: () => Promise<Sandbox>): Promise<Sandbox> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      const taken = /already in use|could not bind|EADDRINUSE/.test((err as Error).message);
      if (!taken || attempt >= 3) throw err;
    }
  }
}

/** What the steps use: curl against the front proxy, and the services' logs. */
export class SandboxClient {
  constructor(private readonly sandbox: () => Sandbox) {}

  get port(): number {
    return this.sandbox().proxyPort;
  }

  /** What `curl -s [-H …] http://localhost:P/path` does: the Host header is `localhost:P`. */
  async curl(urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    // localhost may resolve to ::1 first; the listener binds 127.0.0.1, so connect there.
    const res = await request(`http://127.0.0.1:${this.port}${urlPath}`, { headers: { host: `localhost:${this.port}`, ...headers }, headersTimeout: 10_000, bodyTimeout: 10_000 });
    return { status: res.statusCode, body: await res.body.text() };
  }

  logs(name: ServiceName): string[] {
    return this.sandbox().logs(name);
  }

  getLines(name: ServiceName): string[] {
    return this.logs(name).filter((l) => l.includes('GET'));
  }

  /** Polls (bounded) until `name`'s log has a line satisfying `pred` `count` times. */
  async waitForLog(name: ServiceName, pred: (line: string) => boolean, count = 1, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.logs(name).filter(pred).length < count) {
      if (Date.now() > deadline) throw new Error(`${name}: expected ${count} matching line(s) within ${timeoutMs} ms; log:\n${this.logs(name).join('\n')}`);
      await sleep(25);
    }
  }
}

/** Declares the five steps as tests; they build on each other and run in file order. */
export function defineVerifySteps(c: SandboxClient): void {
  test('step 1: /service/1 answers from service 1', async () => {
    const r = await c.curl('/service/1');
    expect(r.status).toBe(200);
    expect(r.body).toBe('Hello from behind Envoy (service 1)!\n');
  });

  test('step 2: service1 saw Host localhost:P; service1-mirror saw localhost-shadow:P and a GET', async () => {
    const P = c.port;
    await c.waitForLog('service1', (l) => l === `Host: localhost:${P}`);
    await c.waitForLog('service1-mirror', (l) => l === `Host: localhost-shadow:${P}`);
    await c.waitForLog('service1-mirror', (l) => l.includes('GET'));
    expect(c.getLines('service1-mirror')).toHaveLength(1);
    expect(c.getLines('service1-mirror')[0]).toContain('"GET /service/1 HTTP/1.1" 200');
    expect(c.logs('service1')).not.toContain(`Host: localhost-shadow:${P}`);
  });

  test('step 3: /service/2 with x-mirror-cluster: service2-mirror answers from service 2', async () => {
    const r = await c.curl('/service/2', { 'x-mirror-cluster': 'service2-mirror' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('Hello from behind Envoy (service 2)!\n');
  });

  test('step 4: service2 saw Host localhost:P; service2-mirror saw localhost-shadow:P and a GET', async () => {
    const P = c.port;
    await c.waitForLog('service2', (l) => l === `Host: localhost:${P}`);
    await c.waitForLog('service2-mirror', (l) => l === `Host: localhost-shadow:${P}`);
    await c.waitForLog('service2-mirror', (l) => l.includes('GET'));
    expect(c.getLines('service2-mirror')).toHaveLength(1);
    expect(c.getLines('service2-mirror')[0]).toContain('"GET /service/2 HTTP/1.1" 200');
  });

  test('step 5: no header or an unknown mirror cluster means no mirror, and the primary is unaffected', async () => {
    const plain = await c.curl('/service/2');
    expect(plain.status).toBe(200);
    expect(plain.body).toBe('Hello from behind Envoy (service 2)!\n');
    const unknown = await c.curl('/service/2', { 'x-mirror-cluster': 'service2-mirror-non-existent' });
    expect(unknown.status).toBe(200);
    expect(unknown.body).toBe('Hello from behind Envoy (service 2)!\n');
    // Both primaries logged; a stray shadow would be issued before the primary, so a short settle suffices.
    await c.waitForLog('service2', (l) => l.includes('GET'), 3);
    await sleep(300);
    expect(c.getLines('service2-mirror')).toHaveLength(1);
    expect(c.getLines('service1-mirror')).toHaveLength(1);
    expect(c.getLines('service2')).toHaveLength(3);
  });
}
