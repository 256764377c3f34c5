import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'undici';

// A real headless Chromium driven over the Chrome DevTools Protocol, for page tests and for
// screenshots: launch (its own profile in a temp dir, its own process group), open a page,
// evaluate, click with real mouse events, wait for loads, capture PNGs, close and kill by its
// own handle. Every wait is bounded.

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The Chromium to run: $CHROMIUM, else the first of the usual paths that exists; null when none. */
export function findChromium(): string | null {
  const fromEnv = process.env.CHROMIUM;
  if (fromEnv && fs.existsSync(fromEnv)) return fromEnv;
  return CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
}

export interface LaunchOptions {
  readonly executable?: string;
  /** Viewport size in CSS pixels. */
  readonly width?: number;
  readonly height?: number;
  /** Bound for starting and for each protocol call (default 15 s). */
  readonly timeoutMs?: number;
}

interface Pending {
  resolve(v: Record<string, unknown>): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

type Listener = (params: Record<string, unknown>, sessionId: string | undefined) => void;

/** One DevTools WebSocket: numbered calls, events to listeners. */
class Cdp {
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<{ method: string; fn: Listener }>();

  private constructor(private readonly ws: WebSocket, private readonly timeoutMs: number) {
    ws.addEventListener('message', (e) => this.#onMessage(String(e.data)));
    ws.addEventListener('close', () => this.#failAll(new Error('DevTools connection closed')));
  }

  static async connect(url: string, timeoutMs: number): Promise<Cdp> {
    const ws = new WebSocket(url);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.addEventListener('open', () => resolve(), { once: true });
        ws.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
      }),
      timeoutMs,
      'DevTools connect',
    );
    return new Cdp(ws, timeoutMs);
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method}: no answer in ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  on(method: string, fn: Listener): () => void {
    const entry = { method, fn };
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  close(): void {
    this.ws.close();
  }

  #onMessage(data: string): void {
    const msg = JSON.parse(data) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; params?: Record<string, unknown>; sessionId?: string };
    if (msg.id !== undefined) {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result ?? {});
      return;
    }
    for (const l of [...this.#listeners]) if (l.method === msg.method) l.fn(msg.params ?? {}, msg.sessionId);
  }

  #failAll(err: Error): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.#pending.delete(id);
    }
  }
}

/** One tab. */
export class Page {
  /** Console and log messages (Log.entryAdded, console API), e.g. CSP violations. */
  readonly messages: string[] = [];

  constructor(private readonly cdp: Cdp, readonly sessionId: string, private readonly timeoutMs: number) {
    cdp.on('Log.entryAdded', (p, s) => {
      if (s === sessionId) this.messages.push(`${String((p.entry as { level?: string }).level)}: ${String((p.entry as { text?: string }).text)}`);
    });
    cdp.on('Runtime.consoleAPICalled', (p, s) => {
      if (s === sessionId) this.messages.push(`console.${String(p.type)}: ${JSON.stringify(p.args)}`);
    });
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.cdp.send(method, params, this.sessionId);
  }

  /** Runs `action` and resolves once the page's load event fired after it began. */
  async waitForLoad(action: () => Promise<unknown>): Promise<void> {
    let off = (): void => undefined;
    const loaded = new Promise<void>((resolve) => {
      off = this.cdp.on('Page.loadEventFired', (_p, s) => {
        if (s === this.sessionId) resolve();
      });
    });
    try {
      await action();
      await withTimeout(loaded, this.timeoutMs, 'page load');
    } finally {
      off();
    }
  }

  async goto(url: string): Promise<void> {
    await this.waitForLoad(async () => {
      const r = await this.send('Page.navigate', { url });
      if (typeof r.errorText === 'string') throw new Error(`navigate ${url}: ${r.errorText}`);
    });
  }

  /** The value of a JS expression in the page (promises awaited); throws what the page threw. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })) as {
      result: { value?: unknown };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails) throw new Error(`page threw: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** Polls `expression` until truthy, at most `timeoutMs`. */
  async waitFor(expression: string, timeoutMs = this.timeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.evaluate<boolean>(`Boolean(${expression})`))) {
      if (Date.now() > deadline) throw new Error(`waitFor: ${expression} not true within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Scrolls the first element matching `selector` into view and clicks its centre with the mouse. */
  async click(selector: string): Promise<void> {
    const at = await this.evaluate<{ x: number; y: number } | null>(`(() => {
      const el = document.querySelector(${JSON.stringify(selector)});
      if (!el) return null;
      el.scrollIntoView({ block: 'center' });
      const r = el.getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    })()`);
    if (at === null) throw new Error(`click: no element matches ${selector}`);
    for (const type of ['mousePressed', 'mouseReleased']) {
      await this.send('Input.dispatchMouseEvent', { type, x: at.x, y: at.y, button: 'left', clickCount: 1 });
    }
  }

  /** A PNG of the viewport, or of the whole page. */
  async screenshot(options: { fullPage?: boolean } = {}): Promise<Buffer> {
    const params: Record<string, unknown> = { format: 'png' };
    if (options.fullPage) {
      const m = (await this.send('Page.getLayoutMetrics')) as { cssContentSize: { width: number; height: number } };
      // Bounded: a page that grows without end is not photographed whole.
      const height = Math.min(Math.ceil(m.cssContentSize.height), 16_384);
      params.clip = { x: 0, y: 0, width: Math.ceil(m.cssContentSize.width), height, scale: 1 };
      params.captureBeyondViewport = true;
    }
    const r = (await this.send('Page.captureScreenshot', params)) as { data: string };
    return Buffer.from(r.data, 'base64');
  }
}

/** A running headless Chromium. */
export class Chromium {
  #closed = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly cdp: Cdp,
    private readonly profile: string,
    private readonly options: Required<Omit<LaunchOptions, 'executable'>>,
  ) {}

  static async launch(options: LaunchOptions = {}): Promise<Chromium> {
    const executable = options.executable ?? findChromium();
    if (executable === null) throw new Error('no Chromium found (set CHROMIUM, or apt-get install chromium)');
    const o = { width: options.width ?? 1280, height: options.height ?? 900, timeoutMs: options.timeoutMs ?? 15_000 };
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-chromium-'));
    const args = [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
      '--disable-extensions', '--disable-background-networking', '--disable-sync', '--disable-component-update', '--mute-audio',
      `--window-size=${o.width},${o.height}`, '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1', `--user-data-dir=${profile}`, 'about:blank',
    ];
    // Its own process group: renderer and helper processes go with it when it is killed.
    const child = spawn(executable, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    try {
      const url = await withTimeout(devtoolsUrl(child), o.timeoutMs, 'Chromium start (DevTools URL on stderr)');
      const cdp = await Cdp.connect(url, o.timeoutMs);
      return new Chromium(child, cdp, profile, o);
    } catch (err) {
      await killGroup(child, 3000);
      fs.rmSync(profile, { recursive: true, force: true });
      throw err;
    }
  }

  async newPage(): Promise<Page> {
    const { targetId } = (await this.cdp.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.cdp.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const page = new Page(this.cdp, sessionId, this.options.timeoutMs);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Log.enable');
    await page.send('Emulation.setDeviceMetricsOverride', { width: this.options.width, height: this.options.height, deviceScaleFactor: 1, mobile: false });
    return page;
  }

  /** Asks the browser to close, then kills its process group if it has not exited in time; removes the profile. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.cdp.send('Browser.close').catch(() => undefined);
    this.cdp.close();
    await killGroup(this.child, 5000);
    fs.rmSync(this.profile, { recursive: true, force: true });
  }
}

/**
 * Loads `url` in a fresh headless Chromium, writes a PNG of the page to `file` and closes the
 * browser. For scripts: e.g. a screenshot of the admin server's /mirror/compare.
 */
export async function screenshotPage(
  url: string,
  file: string,
  options: LaunchOptions & { readonly fullPage?: boolean } = {},
): Promise<{ file: string; bytes: number }> {
  const browser = await Chromium.launch(options);
  try {
    const page = await browser.newPage();
    await page.goto(url);
    const png = await page.screenshot({ fullPage: options.fullPage ?? true });
    fs.writeFileSync(file, png);
    return { file, bytes: png.length };
  } finally {
    await browser.close();
  }
}

/** True when `buf` starts with the PNG signature and holds an IHDR chunk; its size in pixels. */
export function pngSize(buf: Buffer): { width: number; height: number } | null {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (buf.length < 24 || !buf.subarray(0, 8).equals(sig) || buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function devtoolsUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      // Keep only a bounded tail: the line we want comes early.
      seen = (seen + chunk.toString('utf8')).slice(-16_384);
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
      if (m) {
        child.stderr!.off('data', onData);
        child.stderr!.resume(); // keep draining so Chromium never blocks on a full pipe
        resolve(m[1]!);
      }
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`Chromium exited (${code ?? signal}) before DevTools listened: ${seen.slice(-2000)}`)));
    child.once('error', reject);
  });
}

async function killGroup(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined) return;
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));
  const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), graceMs).unref());
  if ((await Promise.race([exited, timer])) === 'late') {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
  }
  // Helpers of the group that outlived the browser process.
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
