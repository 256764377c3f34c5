import { isIP } from 'node:net';
import type * as protobuf from 'protobufjs';
import { IssueCollector, joinPath } from '../errors';
import type {
  CidrRange,
  FractionalPercent,
  HeaderEdits,
  HeaderMutation,
  HeaderToAdd,
  RuntimeFraction,
  SocketAddress,
  StringMatcher,
  TypedConfig,
} from '../model';
import { typeForUrl } from '../proto';
import { DEFAULT_MAX_PROGRAM_SIZE, MAX_PROGRAM_SIZE_RUNTIME_KEY, type Re2, type Re2Options, compileRe2, parseSubstitution } from '../../util/re2';

/**
 * A decoded protobuf message as a plain object (`toObject` with snake_case keys). Decoders read
 * these loosely typed trees and produce the strict model.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Pb = { readonly [field: string]: any };

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: false, arrays: true };

/** A protobuf message as the plain tree the decoders read. */
export function plain(type: protobuf.Type, message: protobuf.Message): Pb {
  return type.toObject(message, TO_OBJECT);
}

/**
 * Files and environment variables that a config names for the process that runs it (a Redis
 * password file, a CA bundle). The sidecar decodes with the real ones; the control plane decodes
 * without any, since they belong to the sidecars' machines, not its own.
 */
export interface LocalReads {
  /** The file's text; throws (with the reason in the message) when it cannot be read. */
  readFile(path: string): string;
  env(name: string): string | undefined;
  /** Why a file could not be opened for appending here (a log file), or null when it can. */
  appendProblem?(path: string): string | null;
}

/** Decoding context: where we are and where issues go. */
export interface Ctx {
  readonly path: string;
  readonly issues: IssueCollector;
  /** Absent: the config is only checked, and what it names on the local machine is not read. */
  readonly local?: LocalReads;
  /** Envoy's runtime `re2.max_program_size.error_level` in force while decoding; 100 when unset. */
  readonly re2MaxProgramSize?: number;
}

export function at(ctx: Ctx, field: string): Ctx {
  return { ...ctx, path: joinPath(ctx.path, field) };
}

export function atIndex(ctx: Ctx, field: string, i: number): Ctx {
  return { ...ctx, path: `${joinPath(ctx.path, field)}[${i}]` };
}

export function atKey(ctx: Ctx, key: string): Ctx {
  return { ...ctx, path: `${ctx.path}["${key}"]` };
}

/** `ctx` with the program-size ceiling that a runtime layer sets (Envoy reads it as an integer). */
export function withRuntimeRe2Limit(ctx: Ctx, runtime: ReadonlyMap<string, string>): Ctx {
  const raw = runtime.get(MAX_PROGRAM_SIZE_RUNTIME_KEY);
  if (raw === undefined || !/^\d+$/.test(raw.trim())) return ctx;
  return { ...ctx, re2MaxProgramSize: Number(raw.trim()) };
}

export function fail(ctx: Ctx, message: string): void {
  ctx.issues.add(ctx.path, message);
}

/** Maps each element of a repeated field, giving each its indexed path. */
export function each<T>(ctx: Ctx, obj: Pb, field: string, decode: (item: Pb, ctx: Ctx) => T): T[] {
  const list = obj[field] as Pb[] | undefined;
  if (!list) return [];
  return list.map((item, i) => decode(item, atIndex(ctx, field, i)));
}

/** google.protobuf.Duration as milliseconds; `fallback` when unset. */
export function durationMs(d: Pb | undefined, fallback: number): number {
  if (!d) return fallback;
  return Number(d.seconds ?? 0) * 1000 + Math.round(Number(d.nanos ?? 0) / 1e6);
}

/** A wrapper message (BoolValue, UInt32Value…) or `fallback` when unset. */
export function wrapped<T>(w: Pb | undefined, fallback: T): T {
  return w === undefined || w === null ? fallback : ((w.value ?? defaultOf(fallback)) as T);
}

function defaultOf(sample: unknown): unknown {
  if (typeof sample === 'boolean') return false;
  if (typeof sample === 'number') return 0;
  if (typeof sample === 'string') return '';
  return null;
}

export function socketAddress(addr: Pb | undefined, ctx: Ctx): SocketAddress {
  const sa = addr?.socket_address as Pb | undefined;
  if (!sa) {
    fail(ctx, 'socket_address is required');
    return { host: '', port: 0 };
  }
  const sctx = at(ctx, 'socket_address');
  if (sa.named_port) fail(at(sctx, 'named_port'), 'named ports are not supported; use port_value');
  if (sa.protocol && sa.protocol !== 'TCP') fail(at(sctx, 'protocol'), 'only TCP is supported');
  const host = String(sa.address ?? '');
  if (!host) fail(at(sctx, 'address'), 'address is required');
  const port = Number(sa.port_value ?? 0);
  if (!(port >= 0 && port <= 65535)) fail(at(sctx, 'port_value'), `port ${port} is out of range`);
  return { host, port };
}

/** Envoy's CidrRange: an IP literal and a prefix length no wider than its family (unset: 0). */
export function cidrRange(c: Pb, ctx: Ctx): CidrRange {
  const addressPrefix = String(c.address_prefix ?? '');
  const family = isIP(addressPrefix);
  if (family === 0) fail(at(ctx, 'address_prefix'), `"${addressPrefix}" is not an IPv4 or IPv6 address`);
  const prefixLen = wrapped(c.prefix_len, 0);
  const width = family === 6 ? 128 : 32;
  if (prefixLen > width) fail(at(ctx, 'prefix_len'), `${prefixLen} is longer than an IPv${family === 6 ? 6 : 4} address (${width})`);
  return { addressPrefix, prefixLen: Math.min(prefixLen, width) };
}

const APPEND_ACTIONS = new Set(['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS']);

export function headerToAdd(opt: Pb, ctx: Ctx): HeaderToAdd {
  const h = (opt.header ?? {}) as Pb;
  const key = String(h.key ?? '').toLowerCase();
  if (!key) fail(at(at(ctx, 'header'), 'key'), 'header key is required');
  if (key.startsWith(':') || key === 'host') {
    // Envoy refuses to let header manipulation touch pseudo-headers and Host.
    fail(at(at(ctx, 'header'), 'key'), `header "${key}" cannot be modified this way`);
  }
  let appendAction: HeaderToAdd['appendAction'] = 'APPEND_IF_EXISTS_OR_ADD';
  if (opt.append !== undefined && opt.append !== null) {
    if (opt.append_action) fail(ctx, 'append and append_action cannot both be set');
    appendAction = wrapped(opt.append, true) ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD';
  } else if (opt.append_action) {
    if (!APPEND_ACTIONS.has(opt.append_action)) fail(at(ctx, 'append_action'), `unsupported value ${opt.append_action}`);
    else appendAction = opt.append_action;
  }
  let value = String(h.value ?? '');
  if (!value && h.raw_value) value = Buffer.from(h.raw_value as Uint8Array).toString('latin1');
  return { key, value, appendAction, keepEmptyValue: Boolean(opt.keep_empty_value) };
}

function headerNames(obj: Pb, field: string, ctx: Ctx): string[] {
  const names = (obj[field] as string[] | undefined) ?? [];
  return names.map((n, i) => {
    const name = n.toLowerCase();
    if (name.startsWith(':') || name === 'host') fail(atIndex(ctx, field, i), `header "${n}" cannot be removed`);
    return name;
  });
}

export function headerEdits(obj: Pb, ctx: Ctx): HeaderEdits {
  return {
    requestHeadersToAdd: each(ctx, obj, 'request_headers_to_add', headerToAdd),
    requestHeadersToRemove: headerNames(obj, 'request_headers_to_remove', ctx),
    responseHeadersToAdd: each(ctx, obj, 'response_headers_to_add', headerToAdd),
    responseHeadersToRemove: headerNames(obj, 'response_headers_to_remove', ctx),
  };
}

export function headerMutation(m: Pb, ctx: Ctx): HeaderMutation {
  if (m.remove !== undefined && m.remove !== '') {
    const name = String(m.remove).toLowerCase();
    if (name.startsWith(':') || name === 'host') fail(at(ctx, 'remove'), `header "${m.remove}" cannot be removed`);
    return { kind: 'remove', name };
  }
  if (m.append) return { kind: 'append', header: headerToAdd(m.append as Pb, at(ctx, 'append')) };
  fail(ctx, 'one of remove or append is required');
  return { kind: 'remove', name: '' };
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

export function fractionalPercent(fp: Pb | undefined): FractionalPercent {
  const denominator = DENOMINATORS[String(fp?.denominator ?? 'HUNDRED')] ?? 100;
  // Envoy clamps a numerator above the denominator to 100 %.
  const numerator = Math.min(Number(fp?.numerator ?? 0), denominator);
  return { numerator, denominator };
}

export function runtimeFraction(rf: Pb | undefined): RuntimeFraction | null {
  if (!rf) return null;
  return { defaultValue: fractionalPercent(rf.default_value as Pb | undefined), runtimeKey: String(rf.runtime_key ?? '') };
}

export function stringMatcher(m: Pb, ctx: Ctx): StringMatcher {
  const ignoreCase = Boolean(m.ignore_case);
  for (const kind of ['exact', 'prefix', 'suffix', 'contains'] as const) {
    if (m[kind] !== undefined) return { kind, value: ignoreCase ? String(m[kind]).toLowerCase() : String(m[kind]), ignoreCase };
  }
  if (m.safe_regex) {
    // ignore_case has no effect on safe_regex, as in Envoy.
    return { kind: 'regex', value: regexMatcher(m.safe_regex as Pb, at(ctx, 'safe_regex')), ignoreCase: false };
  }
  fail(ctx, 'one of exact, prefix, suffix, contains or safe_regex is required');
  return { kind: 'exact', value: '', ignoreCase: false };
}

/**
 * A RegexMatcher (`{ regex, google_re2? }`): its pattern, checked the way Envoy's RE2 engine
 * checks it. RE2 must accept the pattern (no backreferences, no lookaround), and its program size
 * must not pass the ceiling: the deprecated `google_re2.max_program_size` when set (then it alone
 * counts, as in Envoy), else the runtime error level (default 100).
 */
export function regexMatcher(m: Pb, ctx: Ctx): string {
  return compileRegexMatcher(m, ctx).regex;
}

function compileRegexMatcher(m: Pb, ctx: Ctx): { regex: string; re: Re2 | null } {
  const regex = String(m.regex ?? '');
  if (!regex) {
    fail(at(ctx, 'regex'), 'regex is required');
    return { regex, re: null };
  }
  const own = (m.google_re2 as Pb | undefined)?.max_program_size as Pb | undefined;
  const options: Re2Options =
    own !== undefined && own !== null
      ? { maxProgramSize: wrapped(own, DEFAULT_MAX_PROGRAM_SIZE), limitSource: 'max_program_size' }
      : { maxProgramSize: ctx.re2MaxProgramSize ?? DEFAULT_MAX_PROGRAM_SIZE, limitSource: 'error_level' };
  const compiled = compileRe2(regex, options);
  if (!compiled.ok) fail(at(ctx, 'regex'), compiled.error);
  return { regex, re: compiled.ok ? compiled.re : null };
}

/** A RegexMatchAndSubstitute: the pattern as regexMatcher checks it, and an RE2 substitution (`\1`). */
export function regexMatchAndSubstitute(r: Pb, ctx: Ctx): { pattern: string; substitution: string } {
  const substitution = String(r.substitution ?? '');
  if (!r.pattern) {
    fail(at(ctx, 'pattern'), 'pattern is required');
    return { pattern: '', substitution };
  }
  const { regex, re } = compileRegexMatcher(r.pattern as Pb, at(ctx, 'pattern'));
  if (re !== null) {
    const parsed = parseSubstitution(substitution, re.groupCount);
    if (!parsed.ok) fail(at(ctx, 'substitution'), parsed.error);
  }
  return { pattern: regex, substitution };
}

/**
 * Unpacks an Any into the plain tree of the message it carries. An unknown type URL is an issue
 * unless `optional`, in which case null comes back.
 */
export function unpackAny(any: Pb | undefined, ctx: Ctx, optional = false): TypedConfig | null {
  if (!any) return null;
  const typeUrl = String(any.type_url ?? '');
  const type = typeForUrl(typeUrl);
  if (!type) {
    if (!optional) fail(ctx, `unsupported type "${typeUrl}"`);
    return null;
  }
  try {
    const message = type.decode(any.value as Uint8Array);
    return { typeUrl, value: plain(type, message) };
  } catch (err) {
    fail(ctx, `cannot decode ${typeUrl}: ${(err as Error).message}`);
    return null;
  }
}

export function typeUrlName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

export function typedConfigMap(obj: Pb | undefined, ctx: Ctx): ReadonlyMap<string, TypedConfig> {
  const out = new Map<string, TypedConfig>();
  if (!obj) return out;
  for (const [name, any] of Object.entries(obj)) {
    const cfg = unpackAny(any as Pb, atKey(ctx, name), true);
    if (cfg) out.set(name, cfg);
  }
  return out;
}

/** Whether a decoded field holds anything (proto3 leaves defaults out; repeated fields come as arrays). */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === '' || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/**
 * Refuses the fields of `obj` that are declared (for wire compatibility with Envoy) but that
 * sidemirror does not act on: config that sets one is rejected by path, never run without it.
 */
export function refuse(obj: Pb | undefined, ctx: Ctx, fields: readonly string[]): void {
  if (!obj) return;
  for (const f of fields) if (isSet(obj[f])) fail(at(ctx, f), 'not supported by sidemirror');
}

/** Only ADS is a config source sidemirror subscribes through; the rest of ConfigSource is refused. */
export function adsConfigSource(src: Pb | undefined, ctx: Ctx): void {
  if (!src) return;
  refuse(src, ctx, ['path', 'path_config_source', 'api_config_source']);
  if (src.resource_api_version === 'V2') fail(at(ctx, 'resource_api_version'), 'V2 is not supported; use V3');
}
