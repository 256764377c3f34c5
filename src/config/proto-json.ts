import * as protobuf from 'protobufjs';
import { fromProto3JSON, JSONValue } from 'proto3-json-serializer';
import { ENVOY_UNDECLARED_FIELDS } from './envoy-fields';
import { ConfigIssue, joinPath } from './errors';

// proto3-json-serializer converts well but validates little: it skips unknown keys, matches
// keys only against the proto field names (so camelCase JSON names vanish under keepCase),
// and throws on the first problem without a path. This module is the front door: it walks the
// JSON against the schema, records every problem with its field path, and hands the serializer
// a copy keyed by proto field names. It never does the conversion itself.

export interface DecodedJson {
  message?: protobuf.Message;
  issues: ConfigIssue[];
  /**
   * Paths of what was reported and left out (a bad value, an unreadable Any, the field a typo
   * most likely meant): later checks that find something missing there only echo the issue.
   */
  dropped?: string[];
}

type Obj = Record<string, unknown>;

const WKT = '.google.protobuf.';

/** Wrapper types are written in JSON as the bare wrapped scalar. */
const WRAPPED: Record<string, string> = Object.fromEntries(
  Object.entries({
    DoubleValue: 'double', FloatValue: 'float', Int64Value: 'int64', UInt64Value: 'uint64', Int32Value: 'int32',
    UInt32Value: 'uint32', BoolValue: 'bool', StringValue: 'string', BytesValue: 'bytes',
  }).map(([name, scalar]) => [WKT + name, scalar]),
);

/** Types whose JSON is not an object of their fields; inside an Any they sit under "value". */
const NOT_AN_OBJECT = new Set(['Any', 'Duration', 'FieldMask', 'ListValue', 'Struct', 'Timestamp', 'Value'].map((n) => WKT + n));

const S32: [number, number] = [-(2 ** 31), 2 ** 31 - 1];
const U32: [number, number] = [0, 2 ** 32 - 1];
const INT32_RANGE: Record<string, [number, number]> = { int32: S32, sint32: S32, sfixed32: S32, uint32: U32, fixed32: U32 };
const S64: [bigint, bigint] = [-(2n ** 63n), 2n ** 63n - 1n];
const U64: [bigint, bigint] = [0n, 2n ** 64n - 1n];
const INT64_RANGE: Record<string, [bigint, bigint]> = { int64: S64, sint64: S64, sfixed64: S64, uint64: U64, fixed64: U64 };
const FLOAT_MAX = 3.4028234663852886e38;
const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const DURATION = /^-?(\d+)(\.\d{1,9})?s$/;
const MAX_DURATION_SECONDS = 315_576_000_000; // ±10,000 years, the limit in duration.proto
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * What the walker returns in place of a value it reported: the field is left out of the copy, so
 * that the rest can still be converted and decoded, and every later check can run in the same pass.
 */
const SKIP: unique symbol = Symbol('skip');

const jsonType = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Sets an own property even for keys like `__proto__`, which map and Struct keys may be. */
function setOwn(target: Obj, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** protoc's default JSON name: drop each `_` and upper-case the character after it. */
function protocJsonName(name: string): string {
  return name.replace(/_+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''));
}

const spellingsCache = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

/** Every key that may name a field of `type`: proto name first, then its JSON names. */
function spellings(type: protobuf.Type): Map<string, protobuf.Field> {
  let map = spellingsCache.get(type);
  if (map) return map;
  map = new Map();
  for (const f of type.fieldsArray) map.set(f.name, f);
  for (const f of type.fieldsArray) {
    const custom = f.options?.json_name as string | undefined;
    // protobufjs' camelCase differs from protoc's on `_1`-style names; accept both.
    for (const alias of [custom, protocJsonName(f.name), protobuf.util.camelCase(f.name)]) {
      if (alias && !map.has(alias)) map.set(alias, f);
    }
  }
  spellingsCache.set(type, map);
  return map;
}

const undeclaredCache = new WeakMap<protobuf.Type, Map<string, string>>();

/** The Envoy field name `key` spells (proto or JSON name) when Envoy's message has it and ours does not. */
function undeclaredEnvoyField(type: protobuf.Type, key: string): string | undefined {
  let map = undeclaredCache.get(type);
  if (!map) {
    map = new Map();
    for (const name of Object.keys(ENVOY_UNDECLARED_FIELDS[type.fullName.slice(1)] ?? {})) {
      map.set(name, name);
      map.set(protocJsonName(name), name);
    }
    undeclaredCache.set(type, map);
  }
  return map.get(key);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_v, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** ` (did you mean "x"?)` for the nearest candidate, or '' when none is close. */
function didYouMean(key: string, candidates: Iterable<string>): string {
  const best = nearest(key, candidates);
  return best ? ` (did you mean "${best}"?)` : '';
}

/** The candidate a misspelt key most likely meant, if one is close. */
function nearest(key: string, candidates: Iterable<string>): string | undefined {
  const fold = (s: string) => s.toLowerCase().replace(/_/g, '');
  let best: string | undefined;
  let bestDistance = 3; // suggestions further than 2 edits away are more noise than help
  for (const c of candidates) {
    if (fold(c) === fold(key)) return c;
    const d = editDistance(key, c);
    if (d < bestDistance && d < key.length) [best, bestDistance] = [c, d];
  }
  return best;
}

/** google.protobuf.Value is the one field type for which JSON null is a value, not "unset". */
function nullIsValue(field: protobuf.Field): boolean {
  return field.resolvedType?.fullName === `${WKT}Value`;
}

class Walker {
  readonly issues: ConfigIssue[] = [];
  readonly dropped: string[] = [];

  private add(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  /** Reports a value of the wrong JSON type; the value is left out. */
  private wrongType(path: string, expected: string, v: unknown): typeof SKIP {
    return this.bad(path, `expected ${expected}, got ${jsonType(v)}`);
  }

  /** Reports a bad value; the value is left out. */
  private bad(path: string, message: string): typeof SKIP {
    this.add(path, message);
    this.dropped.push(path);
    return SKIP;
  }

  message(type: protobuf.Type, v: unknown, path: string): unknown {
    const name = type.fullName;
    const wrapped = WRAPPED[name];
    if (wrapped) {
      if (isObject(v)) return this.wrongType(path, `${wrapped} (a ${name.slice(1)} is written as the bare value)`, v);
      return this.scalar(wrapped, v, path);
    }
    // Struct/Value/ListValue content is free-form JSON: the serializer converts it as it is.
    switch (name) {
      case `${WKT}Value`: return v;
      case `${WKT}Struct`: return isObject(v) ? v : this.wrongType(path, 'an object', v);
      case `${WKT}ListValue`: return Array.isArray(v) ? v : this.wrongType(path, 'an array', v);
      case `${WKT}FieldMask`: return typeof v === 'string' ? v : this.wrongType(path, 'a string of paths', v);
      case `${WKT}Duration`: return this.duration(v, path);
      case `${WKT}Timestamp`: return this.timestamp(v, path);
    }
    if (!isObject(v)) return this.wrongType(path, 'an object', v);
    if (name === `${WKT}Any`) return this.any(type, v, path);
    return this.fields(type, v, path, new Set());
  }

  /** Walks an object's keys as fields of `type`; keys in `skip` belong to the caller. */
  private fields(type: protobuf.Type, obj: Obj, path: string, skip: Set<string>): Obj {
    const known = spellings(type);
    const out: Obj = {};
    const keyUsed = new Map<string, string>(); // field name → the key that set it
    const oneofMember = new Map<string, string>(); // oneof name → the member already set
    for (const [key, value] of Object.entries(obj)) {
      if (skip.has(key)) continue;
      const field = known.get(key);
      if (!field) {
        const envoyName = undeclaredEnvoyField(type, key);
        if (envoyName !== undefined) {
          // A real Envoy field we leave out: refused as such, never skipped as if it were not there.
          const at = joinPath(path, envoyName);
          this.add(at, 'not supported by sidemirror');
          this.dropped.push(at);
          continue;
        }
        const hint = nearest(key, known.keys());
        this.add(joinPath(path, key), `unknown field "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
        if (hint) this.dropped.push(joinPath(path, known.get(hint)!.name));
        continue;
      }
      const at = joinPath(path, field.name);
      const earlier = keyUsed.get(field.name);
      if (earlier !== undefined) {
        this.add(at, `field given twice, as "${earlier}" and "${key}"`);
        continue;
      }
      keyUsed.set(field.name, key);
      field.resolve();
      // null means "default", except for a singular Value, where it is the JSON null value.
      if (value === null && (field.repeated || field.map || !nullIsValue(field))) continue;
      // proto3 `optional` fields sit alone in a synthetic oneof (`_name`), so they never conflict here.
      const oneof = field.partOf;
      if (oneof) {
        const other = oneofMember.get(oneof.name);
        if (other !== undefined) {
          this.add(at, `only one of "${other}", "${field.name}" may be set (oneof "${oneof.name}")`);
          continue;
        }
        oneofMember.set(oneof.name, field.name);
      }
      const walked = this.field(field, value, at);
      if (walked !== SKIP) out[field.name] = walked;
    }
    return out;
  }

  private field(field: protobuf.Field, v: unknown, path: string): unknown {
    if (field instanceof protobuf.MapField) {
      if (!isObject(v)) return this.wrongType(path, 'an object (a map)', v);
      const out: Obj = {};
      for (const [key, value] of Object.entries(v)) {
        const at = `${path}[${JSON.stringify(key)}]`;
        const keyOk = this.mapKey(field.keyType, key, at);
        if (value === null && !nullIsValue(field)) this.add(at, 'null is not allowed as a map value');
        else {
          const walked = this.single(field, value, at);
          if (keyOk && walked !== SKIP) setOwn(out, key, walked);
        }
      }
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(v)) return this.wrongType(path, 'an array', v);
      // A bad message element becomes an empty one, so later elements keep their index (and path).
      const t = field.resolvedType;
      const placeholder = t instanceof protobuf.Type && !WRAPPED[t.fullName] && !NOT_AN_OBJECT.has(t.fullName) ? {} : SKIP;
      return v.map((el: unknown, i) => {
        const at = `${path}[${i}]`;
        const walked = el === null && !nullIsValue(field) ? this.wrongType(at, 'a list element', el) : this.single(field, el, at);
        return walked === SKIP ? placeholder : walked;
      }).filter((el) => el !== SKIP);
    }
    return this.single(field, v, path);
  }

  private single(field: protobuf.Field, v: unknown, path: string): unknown {
    const t = field.resolvedType;
    if (t instanceof protobuf.Type) return this.message(t, v, path);
    if (t instanceof protobuf.Enum) return this.enumValue(t, v, path);
    return this.scalar(field.type, v, path);
  }

  /** Map keys are always JSON strings; they must spell a value of the key type. */
  private mapKey(keyType: string, key: string, path: string): boolean {
    if (keyType === 'bool') {
      if (key === 'true' || key === 'false') return true;
      this.add(path, `map key must be "true" or "false"`);
      return false;
    }
    return keyType === 'string' || this.scalar(keyType, key, path) !== SKIP;
  }

  private scalar(kind: string, v: unknown, path: string): unknown {
    switch (kind) {
      case 'string':
        return typeof v === 'string' ? v : this.wrongType(path, 'a string', v);
      case 'bool': // proto3 JSON has no "true"-as-string; YAML users must not get a silent coercion
        return typeof v === 'boolean' ? v : this.wrongType(path, 'a boolean', v);
      case 'bytes':
        if (typeof v !== 'string') return this.wrongType(path, 'a base64 string', v);
        if (!BASE64.test(v)) return this.bad(path, 'invalid base64');
        return v;
      case 'float':
      case 'double': {
        if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return v;
        if (typeof v === 'string' ? !DECIMAL.test(v) : typeof v !== 'number') return this.wrongType(path, `${kind} (a number)`, v);
        // Infinity must be spelled out ("Infinity", or YAML's .inf); "1e999" or 1e39 for a float is out of range.
        const n = Number(v);
        const limit = kind === 'float' ? FLOAT_MAX : Number.MAX_VALUE;
        if (Math.abs(n) > limit && (typeof v === 'string' || Number.isFinite(n))) return this.bad(path, `${v} is out of range for ${kind}`);
        return v;
      }
    }
    const range32 = INT32_RANGE[kind];
    const range64 = INT64_RANGE[kind];
    if (!range32 && !range64) throw new Error(`proto-json: unhandled scalar type ${kind}`);
    if (typeof v !== 'number' && typeof v !== 'string') return this.wrongType(path, `${kind} (an integer)`, v);
    if (typeof v === 'number' ? !Number.isInteger(v) : !INTEGER.test(v)) {
      return this.bad(path, `expected ${kind} (an integer), got ${JSON.stringify(v)}`);
    }
    if (range32) {
      const n = Number(v);
      if (n < range32[0] || n > range32[1]) return this.bad(path, `${v} is out of range for ${kind}`);
      return n; // a number is what protobufjs' fromObject handles best for 32-bit fields
    }
    const big = BigInt(v as string | number);
    if (big < range64[0] || big > range64[1]) return this.bad(path, `${v} is out of range for ${kind}`);
    // Past 2^53 a JSON number has already lost digits by the time we see it.
    if (typeof v === 'number' && !Number.isSafeInteger(v)) return this.bad(path, `${v} is too large for a JSON number; quote it as a string`);
    return v; // 64-bit values stay strings so that no precision is lost
  }

  private enumValue(e: protobuf.Enum, v: unknown, path: string): unknown {
    const names = Object.keys(e.values);
    if (typeof v === 'string') {
      if (Object.prototype.hasOwnProperty.call(e.values, v)) return v;
      // Envoy parses config with protobuf's case_insensitive_enum_parsing: `round_robin` is ROUND_ROBIN.
      const upper = v.toUpperCase();
      if (Object.prototype.hasOwnProperty.call(e.values, upper)) return upper;
      return this.bad(path, `unknown value "${v}" for enum ${e.fullName.slice(1)}${didYouMean(v, names)}; allowed: ${names.join(', ')}`);
    }
    if (typeof v === 'number' && Number.isInteger(v)) {
      if (e.valuesById[v] !== undefined) return v;
      return this.bad(path, `${v} is not a value of enum ${e.fullName.slice(1)}; allowed: ${names.join(', ')}`);
    }
    return this.wrongType(path, `one of ${names.join(', ')}`, v);
  }

  private duration(v: unknown, path: string): unknown {
    if (typeof v !== 'string') return this.wrongType(path, 'a duration like "1.5s"', v);
    const m = DURATION.exec(v);
    if (!m) return this.bad(path, `expected a duration like "1.5s", got ${JSON.stringify(v)}`);
    // The serializer's parser has no sign; reporting here beats its pathless error later.
    if (v.startsWith('-')) return this.bad(path, 'negative durations are not supported');
    if (Number(m[1]) > MAX_DURATION_SECONDS) return this.bad(path, `${v} is out of range for a duration`);
    return v;
  }

  private timestamp(v: unknown, path: string): unknown {
    if (typeof v !== 'string') return this.wrongType(path, 'an RFC 3339 timestamp', v);
    const m = RFC3339.exec(v);
    const [y, mo, d, h, mi, s] = m ? m.slice(1, 7).map(Number) : [];
    const daysInMonth = m ? new Date(Date.UTC(y, mo, 0)).getUTCDate() : 0;
    if (!m || mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) {
      return this.bad(path, `expected an RFC 3339 timestamp like "2024-01-31T12:00:00Z", got ${JSON.stringify(v)}`);
    }
    // Rewrite to UTC "Z": the serializer reads the fraction as "everything up to the last
    // character", which is only right when the offset is a single "Z".
    const utc = new Date(`${m.slice(1, 4).join('-')}T${m.slice(4, 7).join(':')}${m[8].toUpperCase()}`);
    const year = utc.getUTCFullYear();
    if (year < 1 || year > 9999) return this.bad(path, `${v} is out of range for a timestamp (years 0001 to 9999 UTC)`);
    return utc.toISOString().replace(/\.\d{3}Z$/, `${m[7] ?? ''}Z`);
  }

  private any(anyType: protobuf.Type, obj: Obj, path: string): unknown {
    const url = obj['@type'];
    const at = joinPath(path, '@type');
    if (typeof url !== 'string') {
      if (url === undefined) return this.bad(path, 'missing "@type"');
      this.dropped.push(path);
      return this.wrongType(at, 'a type URL string', url);
    }
    const inner = lookupTypeUrl(anyType.root, url);
    if (!inner) {
      this.dropped.push(path);
      return this.bad(at, `unknown type "${url}"`);
    }
    const out: Obj = { '@type': url };
    if (!NOT_AN_OBJECT.has(inner.fullName) && !WRAPPED[inner.fullName]) {
      // Same path prefix: errors inside read `...typed_config.route_config...`.
      return Object.assign(out, this.fields(inner, obj, path, new Set(['@type'])));
    }
    for (const key of Object.keys(obj)) {
      if (key !== '@type' && key !== 'value') this.add(joinPath(path, key), `unknown field "${key}"`);
    }
    if (!('value' in obj)) return this.bad(path, `missing "value" (a ${inner.fullName.slice(1)} in an Any goes under "value")`);
    const value = this.message(inner, obj.value, joinPath(path, 'value'));
    if (value === SKIP) return SKIP;
    out.value = value;
    return out;
  }
}

/** The message type a type URL names (its last path segment), only on an exact match. */
function lookupTypeUrl(root: protobuf.Root, url: string): protobuf.Type | undefined {
  const name = url.slice(url.lastIndexOf('/') + 1);
  try {
    const t = root.lookupType(name);
    // lookup also finds names relative to nested namespaces; a type URL is always absolute.
    return t.fullName === `.${name}` ? t : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Walks json against type: reports every issue with its path; returns a copy whose keys are the
 * proto field names, with every reported value left out (undefined when the whole value is bad).
 */
export function normalizeProto3Json(type: protobuf.Type, json: unknown, path: string): { value: unknown; issues: ConfigIssue[]; dropped: string[] } {
  const walker = new Walker();
  const value = walker.message(type, json, path);
  return { value: value === SKIP ? undefined : value, issues: walker.issues, dropped: walker.dropped };
}

/** normalize, then (only if no issues) fromProto3JSON + wrap thrown errors as an issue at `path`. */
export function decodeProto3Json(type: protobuf.Type, json: unknown, path: string): DecodedJson {
  const decoded = decodeProto3JsonPartial(type, json, path);
  return decoded.issues.length > 0 ? { issues: decoded.issues } : { message: decoded.message, issues: [] };
}

/**
 * Like decodeProto3Json, but the message of what could be read comes back beside the issues, so
 * that a loader can go on to decode and cross-check the rest and report everything in one pass.
 */
export function decodeProto3JsonPartial(type: protobuf.Type, json: unknown, path: string): DecodedJson {
  const { value, issues, dropped } = normalizeProto3Json(type, json, path);
  if (value === undefined) return { issues, dropped };
  try {
    const message = fromProto3JSON(type, value as JSONValue);
    // Only a top-level null decodes to null, and normalize already rejects that; stay safe.
    if (message === null) return { issues: [...issues, { path, message: `expected an object, got null` }] };
    return { message, issues, dropped };
  } catch (err) {
    return { issues: [...issues, { path, message: err instanceof Error ? err.message : String(err) }] };
  }
}
