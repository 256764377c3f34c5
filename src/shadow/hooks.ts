import * as path from 'node:path';
import { isUint8Array } from 'node:util/types';
import type { Logger } from '../log/logger';
import { describe, isErrorLike, loadModuleFile, resolveHookFile } from './hook-loader';

// User mirror hooks, after OpenResty Edge's mirror hooks: a JavaScript/TypeScript module whose
// exported beforeMirror / mirrorRewrite / afterMirror run around one shadow request.
//
// Containment: every call is wrapped in try/catch and, when the hook returns a promise, raced
// against a timer of `timeoutMs` (the timer is cleared when the hook settles first). A hook that
// hangs cannot be cancelled, but the caller moves on. Every call's outcome goes to `observe`;
// failures are logged at most once per 10 s per hook name, with the number suppressed since the
// previous line. A synchronous hook that loops forever blocks the event loop: nothing in-process
// can bound that.
//
// Fallbacks (a broken hook must never send surprising traffic, nor touch the primary):
//   beforeMirror  fails → skip the mirror
//   mirrorRewrite fails → skip the mirror (never send the unmodified request instead)
//   afterMirror   fails → add no headers to the primary's response

export interface HookRequest {
  method: string;
  path: string;
  /** Lowercase names. */
  headers: Record<string, string | string[]>;
  /** null when the body is not buffered for this policy */
  body: Buffer | null;
}

export interface HookContext {
  readonly policy: string;
  readonly cluster: string;
  readonly mode: 'async' | 'sync';
  /** the primary request as received */
  readonly request: Readonly<HookRequest>;
  /** per-request scratch shared between the hooks of one mirror */
  readonly vars: Record<string, unknown>;
}

export interface HookResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** at most maxBodyBytes */
  readonly body: Buffer;
  readonly truncated: boolean;
  readonly durationMs: number;
}

export interface MirrorHooks {
  beforeMirror?(ctx: HookContext): unknown;
  mirrorRewrite?(ctx: HookContext, req: HookRequest): unknown;
  afterMirror?(ctx: HookContext, res: HookResponse): unknown;
}

export type HookName = 'beforeMirror' | 'mirrorRewrite' | 'afterMirror';
export type HookOutcome = 'ok' | 'threw' | 'timed_out' | 'bad_return';

export interface HookObserver {
  (hook: HookName, outcome: HookOutcome): void;
}

export interface HookRunnerOptions {
  /** Bound on each asynchronous hook call, in ms (> 0). */
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly observe?: HookObserver;
}

const HOOK_NAMES: readonly HookName[] = ['beforeMirror', 'mirrorRewrite', 'afterMirror'];
const LOG_INTERVAL_MS = 10_000;

/** RFC 9110 token (header names, methods). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What Node's http accepts in a header value (checkInvalidHeaderChar): no CR, LF, NUL, other controls, or chars above 0xff. */
const INVALID_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** A request target must not contain whitespace or controls. */
const INVALID_PATH = /[\x00-\x20\x7f]/;
/** Headers afterMirror may not add to the primary's response: they would break its framing. */
const RESPONSE_DENYLIST = new Set([
  'content-length', 'transfer-encoding', 'content-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer',
]);

type HookFn = (...args: unknown[]) => unknown;
interface BoundHook {
  readonly fn: HookFn;
  /** `this` for the call: the exports object or `default`, so methods of an exported object work. */
  readonly owner: unknown;
}

type CallResult = { readonly settled: true; readonly value: unknown } | { readonly settled: false };
const FAILED: CallResult = { settled: false };
const TIMEOUT: unique symbol = Symbol('timeout');

export class HookRunner {
  readonly hasBefore: boolean;
  readonly hasRewrite: boolean;
  readonly hasAfter: boolean;
  readonly #hooks: Partial<Record<HookName, BoundHook>>;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #observe: HookObserver | undefined;
  readonly #log: Record<HookName, { last: number; suppressed: number }> = {
    beforeMirror: { last: -Infinity, suppressed: 0 },
    mirrorRewrite: { last: -Infinity, suppressed: 0 },
    afterMirror: { last: -Infinity, suppressed: 0 },
  };

  private constructor(
    /** The resolved file (or a label for fromExports), for logs. */
    readonly module: string,
    hooks: Partial<Record<HookName, BoundHook>>,
    o: HookRunnerOptions,
  ) {
    this.#hooks = hooks;
    this.hasBefore = hooks.beforeMirror !== undefined;
    this.hasRewrite = hooks.mirrorRewrite !== undefined;
    this.hasAfter = hooks.afterMirror !== undefined;
    this.#timeoutMs = o.timeoutMs;
    this.#logger = o.logger;
    this.#observe = o.observe;
  }

  /**
   * Loads a hook module. Throws an Error with a clear message when the file is missing, has an
   * unsupported extension (.mjs/.mts: ES modules cannot be loaded synchronously here), fails to
   * compile or evaluate, or exports none of the three hooks (or exports one that is not a function).
   * `.js`/`.cjs` go through require (and so Node's module cache); `.ts`/`.cts` are transpiled with
   * the `typescript` package (syntax only, no type check) on every load.
   */
  static load(file: string, o: HookRunnerOptions): HookRunner {
    checkTimeout(o.timeoutMs);
    if (!path.isAbsolute(file)) throw new Error(`hook module ${file}: an absolute path is needed here (HookDirs.locate finds one)`);
    const resolved = resolveHookFile(file, '/');
    return HookRunner.fromFile(resolved, loadModuleFile(resolved), o);
  }

  /** A runner over the exports of a module already loaded from `file` (see MirrorResources). */
  static fromFile(file: string, exports: unknown, o: HookRunnerOptions): HookRunner {
    checkTimeout(o.timeoutMs);
    return new HookRunner(file, pickHooks(exports, `hook module ${file}`), o);
  }

  /** The same runner over an already-loaded exports object (tests, built-in hooks). */
  static fromExports(exports: unknown, o: HookRunnerOptions, label = '<inline hooks>'): HookRunner {
    checkTimeout(o.timeoutMs);
    return new HookRunner(label, pickHooks(exports, label), o);
  }

  /**
   * true: mirror; false: skip. The hook skips by returning `false`; `true` or nothing (undefined)
   * means mirror. Anything else is a bad_return. Failure (threw, timed_out, bad_return) → skip.
   */
  async beforeMirror(ctx: HookContext): Promise<boolean> {
    const hook = this.#hooks.beforeMirror;
    if (!hook) return true;
    const r = await this.#call('beforeMirror', hook, [ctx]);
    if (!r.settled) return false;
    if (r.value === undefined || r.value === true) return this.#ok('beforeMirror', true);
    if (r.value === false) return this.#ok('beforeMirror', false);
    this.#fail('beforeMirror', 'bad_return', `expected true, false or undefined; got ${describe(r.value)}`);
    return false;
  }

  /**
   * The request to send, or null to skip. The hook gets a copy of `req` (the caller's object is
   * never changed) and may edit it in place and return nothing, or return a new object of the same
   * shape; returning `false` skips deliberately. The result is checked (method a token, path
   * starting with '/' without whitespace/controls, headers an object of valid names → string or
   * string[] values valid for Node's http, body Buffer | Uint8Array | string | null) and returned as
   * a fresh object with lowercase header names and `undefined` header values dropped. Body: a
   * Buffer is the body to send; null means the primary's body unchanged (streamed when it was not
   * buffered); send no body with `Buffer.alloc(0)`. Content-Length is left to the caller.
   * Failure (threw, timed_out, bad_return) → null (skip). Without the hook, `req` itself comes back.
   */
  async mirrorRewrite(ctx: HookContext, req: HookRequest): Promise<HookRequest | null> {
    const hook = this.#hooks.mirrorRewrite;
    if (!hook) return req;
    const copy = copyRequest(req);
    const r = await this.#call('mirrorRewrite', hook, [ctx, copy]);
    if (!r.settled) return null;
    if (r.value === false) return this.#ok('mirrorRewrite', null);
    const candidate = r.value === undefined ? copy : r.value;
    const checked = checkRequest(candidate);
    if (typeof checked === 'string') {
      this.#fail('mirrorRewrite', 'bad_return', checked);
      return null;
    }
    return this.#ok('mirrorRewrite', checked);
  }

  /**
   * Headers to add to the primary's response (used only in sync mode): the hook returns an object
   * of header name → string, or nothing. Names must be tokens and not framing/hop-by-hop headers
   * (content-length, transfer-encoding, content-encoding, connection, …); values strings that
   * Node's http accepts (no CR/LF/NUL); `undefined` values are dropped. One bad entry rejects the
   * whole object (bad_return). Names come back lowercase. Failure or nothing → {}.
   */
  async afterMirror(ctx: HookContext, res: HookResponse): Promise<Record<string, string>> {
    const hook = this.#hooks.afterMirror;
    if (!hook) return {};
    const r = await this.#call('afterMirror', hook, [ctx, res]);
    if (!r.settled) return {};
    if (r.value === undefined || r.value === null) return this.#ok('afterMirror', {});
    const checked = checkResponseHeaders(r.value);
    if (typeof checked === 'string') {
      this.#fail('afterMirror', 'bad_return', checked);
      return {};
    }
    return this.#ok('afterMirror', checked);
  }

  async #call(name: HookName, hook: BoundHook, args: unknown[]): Promise<CallResult> {
    let value: unknown;
    try {
      value = hook.fn.apply(hook.owner, args);
    } catch (err) {
      this.#fail(name, 'threw', err);
      return FAILED;
    }
    if (!isThenable(value)) return { settled: true, value };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<typeof TIMEOUT>((resolve) => {
      timer = setTimeout(resolve, this.#timeoutMs, TIMEOUT);
    });
    try {
      // race() subscribes to the hook's promise, so a rejection after the timeout is handled.
      const v = await Promise.race([Promise.resolve(value), timedOut]);
      if (v === TIMEOUT) {
        this.#fail(name, 'timed_out', `did not settle within ${this.#timeoutMs} ms`);
        return FAILED;
      }
      return { settled: true, value: v };
    } catch (err) {
      this.#fail(name, 'threw', err);
      return FAILED;
    } finally {
      clearTimeout(timer);
    }
  }

  #ok<T>(name: HookName, value: T): T {
    this.#report(name, 'ok');
    return value;
  }

  #fail(name: HookName, outcome: Exclude<HookOutcome, 'ok'>, detail: unknown): void {
    this.#report(name, outcome);
    const state = this.#log[name];
    const now = Date.now();
    if (now - state.last < LOG_INTERVAL_MS) {
      state.suppressed++;
      return;
    }
    const suppressed = state.suppressed;
    state.last = now;
    state.suppressed = 0;
    const fields: Record<string, unknown> = { hook: name, module: this.module, outcome, suppressed };
    if (outcome === 'threw') fields.err = isErrorLike(detail) ? detail : new Error(`non-Error thrown: ${describe(detail)}`);
    else fields.reason = String(detail);
    try {
      this.#logger.warn(fields, `mirror hook ${name} ${outcome}; mirror ${name === 'afterMirror' ? 'adds no headers' : 'skipped'}, primary unaffected`);
    } catch {
      // A logger failure must not reach the data path either.
    }
  }

  #report(name: HookName, outcome: HookOutcome): void {
    if (!this.#observe) return;
    try {
      this.#observe(name, outcome);
    } catch {
      // Counting is best-effort.
    }
  }
}

/**
 * A context for one mirror: a frozen copy of the primary request (so hooks cannot change what the
 * proxy sends upstream) and a fresh `vars`. Copies the header object; the body Buffer is shared.
 */
export function createHookContext(init: { policy: string; cluster: string; mode: 'async' | 'sync'; request: HookRequest }): HookContext {
  const headers: Record<string, string | string[]> = {};
  for (const name of Object.keys(init.request.headers)) {
    const v = init.request.headers[name];
    if (v !== undefined) headers[name] = Array.isArray(v) ? Object.freeze([...v]) as string[] : v;
  }
  const request = Object.freeze({ method: init.request.method, path: init.request.path, headers: Object.freeze(headers), body: init.request.body });
  return Object.freeze({ policy: init.policy, cluster: init.cluster, mode: init.mode, request, vars: {} });
}

// ── results ──────────────────────────────────────────────────────────────────────────────────

function copyRequest(req: HookRequest): HookRequest {
  const headers: Record<string, string | string[]> = {};
  for (const name of Object.keys(req.headers)) {
    const v = req.headers[name];
    if (v !== undefined) headers[name] = Array.isArray(v) ? [...v] : v;
  }
  return { method: req.method, path: req.path, headers, body: req.body };
}

/** The checked, normalised request, or why it is not one. */
function checkRequest(v: unknown): HookRequest | string {
  if (!isPlainObject(v)) return `expected a request object, false or undefined; got ${describe(v)}`;
  const { method, path: p, headers, body } = v as Record<string, unknown>;
  if (typeof method !== 'string' || !TOKEN.test(method)) return `method must be an HTTP token; got ${describe(method)}`;
  if (typeof p !== 'string' || !p.startsWith('/')) return `path must be a string starting with '/'; got ${describe(p)}`;
  if (INVALID_PATH.test(p)) return 'path contains whitespace or control characters';
  if (!isPlainObject(headers)) return `headers must be an object; got ${describe(headers)}`;
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    const value = (headers as Record<string, unknown>)[name];
    if (value === undefined) continue;
    if (!TOKEN.test(name)) return `invalid header name ${JSON.stringify(name)}`;
    const values = Array.isArray(value) ? value : [value];
    for (const one of values) {
      if (typeof one !== 'string') return `header ${name}: values must be strings; got ${describe(one)}`;
      if (INVALID_HEADER_VALUE.test(one)) return `header ${name}: value contains CR, LF or other invalid characters`;
    }
    const lower = name.toLowerCase();
    const prior = out[lower];
    const copy = Array.isArray(value) ? [...(value as string[])] : (value as string);
    out[lower] = prior === undefined ? copy : ([] as string[]).concat(prior, copy);
  }
  let b: Buffer | null;
  if (body === null || body === undefined) b = null;
  else if (Buffer.isBuffer(body)) b = body;
  else if (isUint8Array(body)) b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  else if (typeof body === 'string') b = Buffer.from(body, 'utf8');
  else return `body must be a Buffer, Uint8Array, string or null; got ${describe(body)}`;
  return { method, path: p, headers: out, body: b };
}

function checkResponseHeaders(v: unknown): Record<string, string> | string {
  if (!isPlainObject(v)) return `expected an object of response headers or undefined; got ${describe(v)}`;
  const out: Record<string, string> = {};
  for (const name of Object.keys(v)) {
    const value = (v as Record<string, unknown>)[name];
    if (value === undefined) continue;
    if (!TOKEN.test(name)) return `invalid header name ${JSON.stringify(name)}`;
    const lower = name.toLowerCase();
    if (RESPONSE_DENYLIST.has(lower)) return `header ${lower} may not be added to the primary's response`;
    if (typeof value !== 'string') return `header ${name}: value must be a string; got ${describe(value)}`;
    if (INVALID_HEADER_VALUE.test(value)) return `header ${name}: value contains CR, LF or other invalid characters`;
    out[lower] = value;
  }
  return out;
}

/** Duck-typed: errors from a module evaluated in another realm (jest, vm) fail `instanceof Error`. */

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function isPlainObject(v: unknown): v is object {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}


function checkTimeout(ms: number): void {
  if (!(typeof ms === 'number' && Number.isFinite(ms) && ms > 0)) throw new Error(`hook timeoutMs must be a positive number; got ${String(ms)}`);
}

function pickHooks(exports: unknown, label: string): Partial<Record<HookName, BoundHook>> {
  const hooks: Partial<Record<HookName, BoundHook>> = {};
  const isObj = (v: unknown): v is Record<string, unknown> => (typeof v === 'object' || typeof v === 'function') && v !== null;
  if (isObj(exports)) {
    const def = exports.default;
    for (const name of HOOK_NAMES) {
      let owner: Record<string, unknown> | null = null;
      if (exports[name] !== undefined) owner = exports;
      else if (isObj(def) && def[name] !== undefined) owner = def;
      if (owner === null) continue;
      const fn = owner[name];
      if (typeof fn !== 'function') throw new Error(`${label}: export ${name} is not a function (${describe(fn)})`);
      hooks[name] = { fn: fn as HookFn, owner };
    }
  }
  if (Object.keys(hooks).length === 0) {
    const found = isObj(exports) ? Object.keys(exports).filter((k) => k !== '__esModule') : [];
    throw new Error(
      `${label} exports none of ${HOOK_NAMES.join(', ')} (as named exports or on default); ` +
        `found ${found.length > 0 ? `exports: ${found.join(', ')}` : 'no exports'}`,
    );
  }
  return hooks;
}
