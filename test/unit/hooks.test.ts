import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../src/log/logger';
import {
  type HookContext,
  type HookName,
  type HookOutcome,
  type HookRequest,
  type HookResponse,
  HookRunner,
  createHookContext,
} from '../../src/shadow/hooks';

let dir: string;
let seq = 0;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-hooks-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  jest.restoreAllMocks();
});

/** Writes a hook module with a unique name (require caches by path) and returns its path. */
function write(ext: string, source: string): string {
  const file = path.join(dir, `hook-${++seq}${ext}`);
  fs.writeFileSync(file, source);
  return file;
}

interface Harness {
  runner: HookRunner;
  outcomes: Array<[HookName, HookOutcome]>;
  warn: jest.Mock;
}

function stubLogger(): { logger: Logger; warn: jest.Mock } {
  const warn = jest.fn();
  const noop = jest.fn();
  const logger = { warn, error: noop, info: noop, debug: noop, trace: noop, fatal: noop } as unknown as Logger;
  return { logger, warn };
}

function load(file: string, timeoutMs = 50): Harness {
  const outcomes: Array<[HookName, HookOutcome]> = [];
  const { logger, warn } = stubLogger();
  const runner = HookRunner.load(file, { timeoutMs, logger, observe: (h, o) => outcomes.push([h, o]) });
  return { runner, outcomes, warn };
}

function request(over: Partial<HookRequest> = {}): HookRequest {
  return { method: 'GET', path: '/things?id=1', headers: { host: 'svc-shadow', accept: 'text/plain', 'x-multi': ['a', 'b'] }, body: null, ...over };
}

function ctx(req: HookRequest = request(), mode: 'async' | 'sync' = 'sync'): HookContext {
  return createHookContext({ policy: 'p1', cluster: 'shadow', mode, request: req });
}

function response(over: Partial<HookResponse> = {}): HookResponse {
  return { status: 201, headers: { 'content-type': 'text/plain' }, body: Buffer.from('hello from the shadow'), truncated: false, durationMs: 3, ...over };
}

describe('beforeMirror', () => {
  const src = `
    exports.beforeMirror = function (ctx) {
      if (ctx.request.headers['x-skip'] !== undefined) return false;
      if (ctx.request.headers['x-yes'] !== undefined) return true;
    };`;

  test('false skips; true and undefined mirror', async () => {
    const h = load(write('.js', src));
    expect(h.runner.hasBefore).toBe(true);
    expect(h.runner.hasRewrite).toBe(false);
    expect(h.runner.hasAfter).toBe(false);
    expect(await h.runner.beforeMirror(ctx(request({ headers: { 'x-skip': '1' } })))).toBe(false);
    expect(await h.runner.beforeMirror(ctx(request({ headers: { 'x-yes': '1' } })))).toBe(true);
    expect(await h.runner.beforeMirror(ctx())).toBe(true);
    expect(h.outcomes).toEqual([
      ['beforeMirror', 'ok'],
      ['beforeMirror', 'ok'],
      ['beforeMirror', 'ok'],
    ]);
    expect(h.warn).not.toHaveBeenCalled();
  });

  test('async hook', async () => {
    const h = load(write('.js', `exports.beforeMirror = async (ctx) => { await new Promise((r) => setTimeout(r, 5)); return ctx.policy !== 'p1'; };`));
    expect(await h.runner.beforeMirror(ctx())).toBe(false);
    expect(h.outcomes).toEqual([['beforeMirror', 'ok']]);
  });

  test('absent hooks are no-ops and are not observed', async () => {
    const h = load(write('.js', `exports.afterMirror = () => ({});`));
    const req = request();
    expect(await h.runner.beforeMirror(ctx())).toBe(true);
    expect(await h.runner.mirrorRewrite(ctx(), req)).toBe(req);
    expect(h.outcomes).toEqual([]);
  });

  test('vars are shared between the hooks of one mirror', async () => {
    const h = load(
      write('.js', `
        exports.beforeMirror = (ctx) => { ctx.vars.seen = ctx.request.path; };
        exports.afterMirror = (ctx) => ({ 'x-seen': ctx.vars.seen });`),
    );
    const c = ctx();
    await h.runner.beforeMirror(c);
    expect(await h.runner.afterMirror(c, response())).toEqual({ 'x-seen': '/things?id=1' });
  });

  test('the context is a frozen copy: a hook cannot change the primary request', async () => {
    const h = load(write('.js', `'use strict'; exports.beforeMirror = (ctx) => { ctx.request.headers.accept = 'evil'; };`));
    const primary = request();
    expect(await h.runner.beforeMirror(ctx(primary))).toBe(false);
    expect(h.outcomes).toEqual([['beforeMirror', 'threw']]);
    expect(primary.headers.accept).toBe('text/plain');
  });
});

describe('mirrorRewrite', () => {
  test('in place: method, path, headers and body; the caller’s request is untouched', async () => {
    const h = load(
      write('.js', `
        exports.mirrorRewrite = (ctx, req) => {
          req.method = 'POST';
          req.path = '/v2' + req.path;
          req.headers['X-Added'] = 'yes';
          delete req.headers.accept;
          req.headers['x-multi'].push('c');
          req.body = Buffer.from('new body');
        };`),
    );
    const req = request({ body: Buffer.from('old') });
    const out = await h.runner.mirrorRewrite(ctx(), req);
    expect(out).toEqual({
      method: 'POST',
      path: '/v2/things?id=1',
      headers: { host: 'svc-shadow', 'x-multi': ['a', 'b', 'c'], 'x-added': 'yes' },
      body: Buffer.from('new body'),
    });
    expect(req).toEqual(request({ body: Buffer.from('old') }));
    expect(h.outcomes).toEqual([['mirrorRewrite', 'ok']]);
  });

  test('returns a new object (async); a string body becomes a Buffer', async () => {
    const h = load(
      write('.js', `
        exports.mirrorRewrite = async (ctx, req) => ({ method: 'PUT', path: '/x', headers: { a: '1', gone: undefined }, body: 'json' });`),
    );
    const out = await h.runner.mirrorRewrite(ctx(), request());
    expect(out).toEqual({ method: 'PUT', path: '/x', headers: { a: '1' }, body: Buffer.from('json') });
  });

  test('a null body stays null (the primary body is sent unchanged)', async () => {
    const h = load(write('.js', `exports.mirrorRewrite = (ctx, req) => req;`));
    const out = await h.runner.mirrorRewrite(ctx(), request());
    expect(out?.body).toBeNull();
  });

  test('returning false skips deliberately', async () => {
    const h = load(write('.js', `exports.mirrorRewrite = () => false;`));
    expect(await h.runner.mirrorRewrite(ctx(), request())).toBeNull();
    expect(h.outcomes).toEqual([['mirrorRewrite', 'ok']]);
    expect(h.warn).not.toHaveBeenCalled();
  });

  test.each([
    ['path without a leading slash', `req.path = 'x'`],
    ['path with a space', `req.path = '/a b'`],
    ['method that is not a token', `req.method = 'GE T'`],
    ['CR/LF in a header value', `req.headers['x-a'] = 'a\\r\\nInjected: 1'`],
    ['invalid header name', `req.headers['bad name'] = 'v'`],
    ['non-string header value', `req.headers['x-n'] = 5`],
    ['body of the wrong type', `req.body = 42`],
    ['headers not an object', `req.headers = 'nope'`],
  ])('%s → bad_return, skipped', async (_name, statement) => {
    const h = load(write('.js', `exports.mirrorRewrite = (ctx, req) => { ${statement}; };`));
    expect(await h.runner.mirrorRewrite(ctx(), request())).toBeNull();
    expect(h.outcomes).toEqual([['mirrorRewrite', 'bad_return']]);
    expect(h.warn).toHaveBeenCalledTimes(1);
  });

  test.each([
    ['a string', `'GET /'`],
    ['null', 'null'],
    ['an array', '[]'],
  ])('returning %s → bad_return, skipped', async (_name, value) => {
    const h = load(write('.js', `exports.mirrorRewrite = () => ${value};`));
    expect(await h.runner.mirrorRewrite(ctx(), request())).toBeNull();
    expect(h.outcomes).toEqual([['mirrorRewrite', 'bad_return']]);
  });
});

describe('afterMirror', () => {
  test('returns headers to add (names lowercased); sees status, headers and body', async () => {
    const h = load(
      write('.js', `
        exports.afterMirror = (ctx, res) => ({
          'X-Shadow-Status': String(res.status),
          'x-shadow-type': res.headers['content-type'],
          'x-shadow-body': res.body.toString('utf8', 0, 5),
          'x-truncated': String(res.truncated),
          'x-unset': undefined,
        });`),
    );
    expect(await h.runner.afterMirror(ctx(), response())).toEqual({
      'x-shadow-status': '201',
      'x-shadow-type': 'text/plain',
      'x-shadow-body': 'hello',
      'x-truncated': 'false',
    });
    expect(h.outcomes).toEqual([['afterMirror', 'ok']]);
  });

  test('nothing returned → {}', async () => {
    const h = load(write('.js', `exports.afterMirror = async () => {};`));
    expect(await h.runner.afterMirror(ctx(), response())).toEqual({});
    expect(h.outcomes).toEqual([['afterMirror', 'ok']]);
  });

  test.each([
    ['CR/LF in a value', `({ 'x-a': 'ok', 'x-b': 'a\\r\\nSet-Cookie: x=1' })`],
    ['a bare LF', `({ 'x-b': 'a\\nb' })`],
    ['a non-object', `'x-a: 1'`],
    ['an array', `[['x-a', '1']]`],
    ['a non-string value', `({ 'x-a': 200 })`],
    ['an invalid name', `({ 'x a': '1' })`],
    ['a framing header', `({ 'Content-Length': '0' })`],
  ])('%s → bad_return, no headers at all', async (_name, value) => {
    const h = load(write('.js', `exports.afterMirror = () => ${value};`));
    expect(await h.runner.afterMirror(ctx(), response())).toEqual({});
    expect(h.outcomes).toEqual([['afterMirror', 'bad_return']]);
    expect(h.warn).toHaveBeenCalledTimes(1);
    expect(h.warn.mock.calls[0][0]).toMatchObject({ hook: 'afterMirror', outcome: 'bad_return' });
  });
});

describe('TypeScript modules', () => {
  test('default export object with async methods using `this`', async () => {
    const h = load(
      write('.ts', `
        interface Req { method: string; path: string; headers: Record<string, string | string[]>; body: Buffer | null }
        const hooks = {
          prefix: '/ts' as const,
          async beforeMirror(ctx: { mode: string }): Promise<boolean> { return ctx.mode === 'sync'; },
          async mirrorRewrite(_ctx: unknown, req: Req): Promise<Req> { return { ...req, path: this.prefix + req.path }; },
          afterMirror(_ctx: unknown, res: { status: number }): Record<string, string> { return { 'x-status': \`\${res.status}\` }; },
        };
        export default hooks;`),
    );
    expect([h.runner.hasBefore, h.runner.hasRewrite, h.runner.hasAfter]).toEqual([true, true, true]);
    expect(await h.runner.beforeMirror(ctx(request(), 'sync'))).toBe(true);
    expect(await h.runner.beforeMirror(ctx(request(), 'async'))).toBe(false);
    expect((await h.runner.mirrorRewrite(ctx(), request()))?.path).toBe('/ts/things?id=1');
    expect(await h.runner.afterMirror(ctx(), response({ status: 503 }))).toEqual({ 'x-status': '503' });
  });

  test('a TypeScript hook that throws is contained', async () => {
    const h = load(write('.ts', `export async function afterMirror(): Promise<never> { throw new TypeError('ts boom'); }`));
    expect(await h.runner.afterMirror(ctx(), response())).toEqual({});
    expect(h.outcomes).toEqual([['afterMirror', 'threw']]);
    expect((h.warn.mock.calls[0][0] as { err: Error }).err.message).toBe('ts boom');
  });

  test('.cts with named exports and a require of a Node built-in', async () => {
    const h = load(
      write('.cts', `
        import { createHash } from 'node:crypto';
        export function afterMirror(_ctx: unknown, res: { body: Buffer }) {
          return { 'x-body-sha1': createHash('sha1').update(res.body).digest('hex') };
        }`),
    );
    const out = await h.runner.afterMirror(ctx(), response({ body: Buffer.from('abc') }));
    expect(out).toEqual({ 'x-body-sha1': 'a9993e364706816aba3e25717850c26c9cd0d89d' });
  });
});

describe('containment', () => {
  test.each(['sync', 'async'])('a %s hook that throws is counted and falls back', async (kind) => {
    const thrower = kind === 'sync' ? `() => { throw new Error('boom'); }` : `async () => { throw new Error('boom'); }`;
    const h = load(write('.js', `exports.beforeMirror = ${thrower}; exports.mirrorRewrite = ${thrower}; exports.afterMirror = ${thrower};`));
    expect(await h.runner.beforeMirror(ctx())).toBe(false);
    expect(await h.runner.mirrorRewrite(ctx(), request())).toBeNull();
    expect(await h.runner.afterMirror(ctx(), response())).toEqual({});
    expect(h.outcomes).toEqual([
      ['beforeMirror', 'threw'],
      ['mirrorRewrite', 'threw'],
      ['afterMirror', 'threw'],
    ]);
    // One line per hook name (each has its own interval).
    expect(h.warn).toHaveBeenCalledTimes(3);
    const [fields, msg] = h.warn.mock.calls[0];
    expect(fields).toMatchObject({ hook: 'beforeMirror', outcome: 'threw', suppressed: 0 });
    expect((fields as { err: Error }).err.message).toBe('boom');
    expect(msg).toMatch(/primary unaffected/);
  });

  test('throwing a non-Error is contained too', async () => {
    const h = load(write('.js', `exports.beforeMirror = () => { throw 'a string'; };`));
    expect(await h.runner.beforeMirror(ctx())).toBe(false);
    expect(h.outcomes).toEqual([['beforeMirror', 'threw']]);
    expect((h.warn.mock.calls[0][0] as { err: Error }).err.message).toMatch(/a string/);
  });

  test('a hanging hook times out after timeoutMs; the caller moves on', async () => {
    const h = load(
      write('.js', `
        const never = () => new Promise(() => {});
        exports.beforeMirror = never; exports.mirrorRewrite = never; exports.afterMirror = never;`),
      50,
    );
    const t0 = Date.now();
    const [before, rewrite, after] = await Promise.all([
      h.runner.beforeMirror(ctx()),
      h.runner.mirrorRewrite(ctx(), request()),
      h.runner.afterMirror(ctx(), response()),
    ]);
    const elapsed = Date.now() - t0;
    expect([before, rewrite, after]).toEqual([false, null, {}]);
    expect(elapsed).toBeGreaterThanOrEqual(40);
    expect(elapsed).toBeLessThan(2000);
    expect(h.outcomes.map(([, o]) => o)).toEqual(['timed_out', 'timed_out', 'timed_out']);
    expect(h.warn.mock.calls[0][0]).toMatchObject({ outcome: 'timed_out', reason: 'did not settle within 50 ms' });
  });

  test('a rejection after the timeout is swallowed', async () => {
    const h = load(write('.js', `exports.beforeMirror = () => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 80));`), 20);
    const unhandled = jest.fn();
    process.on('unhandledRejection', unhandled);
    try {
      expect(await h.runner.beforeMirror(ctx())).toBe(false);
      await new Promise((r) => setTimeout(r, 120));
      expect(unhandled).not.toHaveBeenCalled();
      expect(h.outcomes).toEqual([['beforeMirror', 'timed_out']]);
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });

  test('the timer is cleared when the hook settles first', async () => {
    const h = load(write('.js', `exports.beforeMirror = async () => true;`), 60_000);
    const clear = jest.spyOn(global, 'clearTimeout');
    expect(await h.runner.beforeMirror(ctx())).toBe(true);
    expect(clear).toHaveBeenCalledTimes(1);
  });

  test('a bad beforeMirror return is counted and skips', async () => {
    const h = load(write('.js', `exports.beforeMirror = () => 'yes';`));
    expect(await h.runner.beforeMirror(ctx())).toBe(false);
    expect(h.outcomes).toEqual([['beforeMirror', 'bad_return']]);
  });

  test('an observer or logger that throws does not escape', async () => {
    const logger = { warn: () => { throw new Error('logger down'); } } as unknown as Logger;
    const runner = HookRunner.load(write('.js', `exports.beforeMirror = () => { throw new Error('x'); };`), {
      timeoutMs: 50,
      logger,
      observe: () => {
        throw new Error('observer down');
      },
    });
    expect(await runner.beforeMirror(ctx())).toBe(false);
  });
});

describe('log suppression', () => {
  test('a burst of failures logs once per 10 s per hook, with the suppressed count on the next line', async () => {
    let now = 1_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
    const h = load(write('.js', `exports.beforeMirror = () => { throw new Error('boom'); }; exports.afterMirror = () => 'bad';`));
    for (let i = 0; i < 50; i++) await h.runner.beforeMirror(ctx());
    expect(h.outcomes).toHaveLength(50);
    expect(h.warn).toHaveBeenCalledTimes(1);
    expect(h.warn.mock.calls[0][0]).toMatchObject({ hook: 'beforeMirror', suppressed: 0 });

    // A different hook has its own interval.
    await h.runner.afterMirror(ctx(), response());
    expect(h.warn).toHaveBeenCalledTimes(2);
    expect(h.warn.mock.calls[1][0]).toMatchObject({ hook: 'afterMirror', outcome: 'bad_return', suppressed: 0 });

    now += 9_999;
    await h.runner.beforeMirror(ctx());
    expect(h.warn).toHaveBeenCalledTimes(2);

    now += 1;
    await h.runner.beforeMirror(ctx());
    expect(h.warn).toHaveBeenCalledTimes(3);
    expect(h.warn.mock.calls[2][0]).toMatchObject({ hook: 'beforeMirror', suppressed: 50 });
  });

  test('successes are not logged', async () => {
    const h = load(write('.js', `exports.beforeMirror = () => true;`));
    for (let i = 0; i < 5; i++) await h.runner.beforeMirror(ctx());
    expect(h.warn).not.toHaveBeenCalled();
  });
});

describe('loading', () => {
  const opts = () => ({ timeoutMs: 50, logger: stubLogger().logger });

  test('the extension may be omitted', () => {
    const file = write('.js', `exports.beforeMirror = () => true;`);
    const runner = HookRunner.load(file.slice(0, -3), opts());
    expect(runner.module).toBe(file);
  });

  test('a relative path is refused here: HookDirs locates modules', () => {
    expect(() => HookRunner.load('hooks.js', opts())).toThrow(/an absolute path is needed/);
  });

  test('missing file', () => {
    expect(() => HookRunner.load(path.join(dir, 'nope/hooks.js'), opts())).toThrow(`hook module not found: ${path.join(dir, 'nope/hooks.js')}`);
  });

  test('a module that calls process.exit while loading fails to load, and the process lives', () => {
    const file = write('.js', `process.exit(3);`);
    expect(() => HookRunner.load(file, opts())).toThrow(`hook module ${file} called process.exit() while loading`);
    expect(typeof process.exit).toBe('function');
    expect(() => HookRunner.load(write('.js', `process.exit(3);`), opts())).toThrow(/called process\.exit\(\)/);
  });

  test('JavaScript syntax error', () => {
    const file = write('.js', `exports.beforeMirror = function ( {`);
    expect(() => HookRunner.load(file, opts())).toThrow(new RegExp(`^failed to load hook module ${escape(file)}: SyntaxError`));
  });

  test('TypeScript syntax error names the line and column', () => {
    const file = write('.ts', `export function beforeMirror(): boolean {\n  return (;\n}\n`);
    expect(() => HookRunner.load(file, opts())).toThrow(new RegExp(`^failed to compile hook module ${escape(file)}: 2:\\d+ Expression expected`));
  });

  test('a module that throws while loading', () => {
    const file = write('.ts', `throw new Error('config missing');\nexport function beforeMirror() { return true; }`);
    expect(() => HookRunner.load(file, opts())).toThrow(`failed to load hook module ${file}: config missing`);
  });

  test('no hooks exported', () => {
    const file = write('.js', `exports.before = () => true; exports.other = 1;`);
    expect(() => HookRunner.load(file, opts())).toThrow(
      `hook module ${file} exports none of beforeMirror, mirrorRewrite, afterMirror (as named exports or on default); found exports: before, other`,
    );
    const empty = write('.ts', `const x = 1;`);
    expect(() => HookRunner.load(empty, opts())).toThrow(/exports none of .*found no exports/);
  });

  test('a hook that is not a function', () => {
    const file = write('.js', `exports.afterMirror = { 'x-a': '1' };`);
    expect(() => HookRunner.load(file, opts())).toThrow(`hook module ${file}: export afterMirror is not a function (an object)`);
  });

  test('.mjs is rejected with the reason', () => {
    const file = write('.mjs', `export function beforeMirror() { return true; }`);
    expect(() => HookRunner.load(file, opts())).toThrow(/ES modules \(\.mjs\) are not supported; hooks are loaded synchronously as CommonJS/);
  });

  test('unsupported extension and directories', () => {
    const file = write('.json', `{}`);
    expect(() => HookRunner.load(file, opts())).toThrow(/unsupported extension \.json/);
    expect(() => HookRunner.load(dir, opts())).toThrow(/is a directory/);
  });

  test('a TypeScript hook without the typescript package', () => {
    const file = write('.ts', `export function beforeMirror() { return true; }`);
    jest.isolateModules(() => {
      jest.doMock('typescript', () => {
        throw new Error("Cannot find module 'typescript'");
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const isolated = require('../../src/shadow/hooks') as typeof import('../../src/shadow/hooks');
      expect(() => isolated.HookRunner.load(file, opts())).toThrow(
        `hook module ${file} is TypeScript, and the 'typescript' package could not be loaded (Cannot find module 'typescript'); install it, or compile the hook to .js`,
      );
    });
    jest.dontMock('typescript');
  });

  test('timeoutMs must be positive', () => {
    const file = write('.js', `exports.beforeMirror = () => true;`);
    expect(() => HookRunner.load(file, { ...opts(), timeoutMs: 0 })).toThrow(/timeoutMs must be a positive number/);
  });
});

describe('examples/hooks/compare-and-tag.ts', () => {
  const example = 'examples/hooks/compare-and-tag.ts';
  const load = () => {
    const outcomes: HookOutcome[] = [];
    const runner = HookRunner.load(path.join(__dirname, '../..', example), {
      timeoutMs: 100,
      logger: stubLogger().logger,
      observe: (_h, o) => outcomes.push(o),
    });
    return { runner, outcomes };
  };

  test('skips requests with x-no-mirror', async () => {
    const { runner } = load();
    expect(await runner.beforeMirror(ctx(request({ headers: { 'x-no-mirror': '1' } })))).toBe(false);
    expect(await runner.beforeMirror(ctx())).toBe(true);
  });

  test('tags the shadow request', async () => {
    const { runner } = load();
    const out = await runner.mirrorRewrite(ctx(), request());
    expect(out?.headers['x-mirror-rewritten']).toBe('1');
    expect(out?.headers.host).toBe('svc-shadow');
  });

  test('reports the shadow status and a header-safe preview of its body', async () => {
    const { runner, outcomes } = load();
    const body = Buffer.concat([Buffer.from('{"ok":true}\r\nSet-Cookie: x\t\u00e9'), Buffer.alloc(100, 'z')]);
    const headers = await runner.afterMirror(ctx(), response({ status: 502, body }));
    expect(headers['x-mirror-status']).toBe('502');
    expect(headers['x-mirror-body']).toBe(`{"ok":true}..Set-Cookie: x...${'z'.repeat(64 - 29)}`);
    expect(Buffer.byteLength(headers['x-mirror-body'])).toBeLessThanOrEqual(64);
    expect(outcomes).toEqual(['ok']);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
