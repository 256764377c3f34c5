import * as protobuf from 'protobufjs';
import { fromProto3JSON, JSONValue } from 'proto3-json-serializer';
import { ConfigIssue, joinPath } from './errors';

// proto3-json-serializer converts well but validates little: it skips unknown keys, matches
// keys only against the proto field names (so camelCase JSON names vanish under keepCase),
// and throws on the first problem without a path. This module is the front door: it walks the
// JSON against the schema, records every problem with its field path, and hands the serializer
// a copy keyed by proto field names. It never does the conversion itself.

export interface DecodedJson {
  message?: protobuf.Message;
  issues: ConfigIssue[];
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
  const fold = (s: string) => s.toLowerCase().replace(/_/g, '');
  let best: string | undefined;
  let bestDistance = 3; // suggestions further than 2 edits away are more noise than help
  for (const c of candidates) {
    if (fold(c) === fold(key)) return ` (did you mean "${c}"?)`;
    const d = editDistance(key, c);
    if (d < bestDistance && d < key.length) [best, bestDistance] = [c, d];
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

/** google.protobuf.Value is the one field type for which JSON null is a value, not "unset". */
function nullIsValue(field: protobuf.Field): boolean {
  return field.resolvedType?.fullName === `${WKT}Value`;
}

class Walker {
  readonly issues: ConfigIssue[] = [];

  private add(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  /** Reports a value of the wrong JSON type and passes it through unchanged. */
  private wrongType(path: string, expected: string, v: unknown): unknown {
    this.add(path, `expected ${expected}, got ${jsonType(v)}`);
    return v;
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
        this.add(joinPath(path, key), `unknown field "${key}"${didYouMean(key, known.keys())}`);
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
        if (other !== undefined) this.add(at, `only one of "${other}", "${field.name}" may be set (oneof "${oneof.name}")`);
        else oneofMember.set(oneof.name, field.name);
      }
      out[field.name] = this.field(field, value, at);
    }
    return out;
  }

  private field(field: protobuf.Field, v: unknown, path: string): unknown {
    if (field instanceof protobuf.MapField) {
      if (!isObject(v)) return this.wrongType(path, 'an object (a map)', v);
      const out: Obj = {};
      for (const [key, value] of Object.entries(v)) {
        const at = `${path}[${JSON.stringify(key)}]`;
        this.mapKey(field.keyType, key, at);
        if (value === null && !nullIsValue(field)) this.add(at, 'null is not allowed as a map value');
        else setOwn(out, key, this.single(field, value, at));
      }
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(v)) return this.wrongType(path, 'an array', v);
      return v.map((el: unknown, i) => {
        const at = `${path}[${i}]`;
        if (el === null && !nullIsValue(field)) return this.wrongType(at, 'a list element', el);
        return this.single(field, el, at);
      });
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
  private mapKey(keyType: string, key: string, path: string): void {
    if (keyType === 'bool') {
      if (key !== 'true' && key !== 'false') this.add(path, `map key must be "true" or "false"`);
    } else if (keyType !== 'string') {
      this.scalar(keyType, key, path);
    }
  }

  private scalar(kind: string, v: unknown, path: string): unknown {
    switch (kind) {
      case 'string':
        return typeof v === 'string' ? v : this.wrongType(path, 'a string', v);
      case 'bool': // proto3 JSON has no "true"-as-string; YAML users must not get a silent coercion
        return typeof v === 'boolean' ? v : this.wrongType(path, 'a boolean', v);
      case 'bytes':
        if (typeof v !== 'string') return this.wrongType(path, 'a base64 string', v);
        if (!BASE64.test(v)) this.add(path, 'invalid base64');
        return v;
      case 'float':
      case 'double': {
        if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return v;
        if (typeof v === 'string' ? !DECIMAL.test(v) : typeof v !== 'number') return this.wrongType(path, `${kind} (a number)`, v);
        // Infinity must be spelled out ("Infinity", or YAML's .inf); "1e999" or 1e39 for a float is out of range.
        const n = Number(v);
        const limit = kind === 'float' ? FLOAT_MAX : Number.MAX_VALUE;
        if (Math.abs(n) > limit && (typeof v === 'string' || Number.isFinite(n))) this.add(path, `${v} is out of range for ${kind}`);
        return v;
      }
    }
    const range32 = INT32_RANGE[kind];
    const range64 = INT64_RANGE[kind];
    if (!range32 && !range64) throw new Error(`proto-json: unhandled scalar type ${kind}`);
    if (typeof v !== 'number' && typeof v !== 'string') return this.wrongType(path, `${kind} (an integer)`, v);
    if (typeof v === 'number' ? !Number.isInteger(v) : !INTEGER.test(v)) {
      this.add(path, `expected ${kind} (an integer), got ${JSON.stringify(v)}`);
      return v;
    }
    if (range32) {
      const n = Number(v);
      if (n < range32[0] || n > range32[1]) this.add(path, `${v} is out of range for ${kind}`);
      return n; // a number is what protobufjs' fromObject handles best for 32-bit fields
    }
    const big = BigInt(v as string | number);
    if (big < range64[0] || big > range64[1]) this.add(path, `${v} is out of range for ${kind}`);
    // Past 2^53 a JSON number has already lost digits by the time we see it.
    else if (typeof v === 'number' && !Number.isSafeInteger(v)) this.add(path, `${v} is too large for a JSON number; quote it as a string`);
    return v; // 64-bit values stay strings so that no precision is lost
  }

  private enumValue(e: protobuf.Enum, v: unknown, path: string): unknown {
    const names = Object.keys(e.values);
    if (typeof v === 'string') {
      if (Object.prototype.hasOwnProperty.call(e.values, v)) return v;
      this.add(path, `unknown value "${v}" for enum ${e.fullName.slice(1)}${didYouMean(v, names)}; allowed: ${names.join(', ')}`);
    } else if (typeof v === 'number' && Number.isInteger(v)) {
      if (e.valuesById[v] !== undefined) return v;
      this.add(path, `${v} is not a value of enum ${e.fullName.slice(1)}; allowed: ${names.join(', ')}`);
    } else {
      this.wrongType(path, `one of ${names.join(', ')}`, v);
    }
    return v;
  }

  private duration(v: unknown, path: string): unknown {
    if (typeof v !== 'string') return this.wrongType(path, 'a duration like "1.5s"', v);
    const m = DURATION.exec(v);
    if (!m) this.add(path, `expected a duration like "1.5s", got ${JSON.stringify(v)}`);
    // The serializer's parser has no sign; reporting here beats its pathless error later.
    else if (v.startsWith('-')) this.add(path, 'negative durations are not supported');
    else if (Number(m[1]) > MAX_DURATION_SECONDS) this.add(path, `${v} is out of range for a duration`);
    return v;
  }

  private timestamp(v: unknown, path: string): unknown {
    if (typeof v !== 'string') return this.wrongType(path, 'an RFC 3339 timestamp', v);
    const m = RFC3339.exec(v);
    const [y, mo, d, h, mi, s] = m ? m.slice(1, 7).map(Number) : [];
    const daysInMonth = m ? new Date(Date.UTC(y, mo, 0)).getUTCDate() : 0;
    if (!m || mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) {
      this.add(path, `expected an RFC 3339 timestamp like "2024-01-31T12:00:00Z", got ${JSON.stringify(v)}`);
      return v;
    }
    // Rewrite to UTC "Z": the serializer reads the fraction as "everything up to the last
    // character", which is only right when the offset is a single "Z".
    const utc = new Date(`${m.slice(1, 4).join('-')}T${m.slice(4, 7).join(':')}${m[8].toUpperCase()}`);
    const year = utc.getUTCFullYear();
    if (year < 1 || year > 9999) this.add(path, `${v} is out of range for a timestamp (years 0001 to 9999 UTC)`);
    return utc.toISOString().replace(/\.\d{3}Z$/, `${m[7] ?? ''}Z`);
  }

  private any(anyType: protobuf.Type, obj: Obj, path: string): unknown {
    const url = obj['@type'];
    const at = joinPath(path, '@type');
    if (typeof url !== 'string') {
      if (url === undefined) this.add(path, 'missing "@type"');
      else this.wrongType(at, 'a type URL string', url);
      return obj;
    }
    const inner = lookupTypeUrl(anyType.root, url);
    if (!inner) {
      this.add(at, `unknown type "${url}"`);
      return obj;
    }
    const out: Obj = { '@type': url };
    if (!NOT_AN_OBJECT.has(inner.fullName) && !WRAPPED[inner.fullName]) {
      // Same path prefix: errors inside read `...typed_config.route_config...`.
      return Object.assign(out, this.fields(inner, obj, path, new Set(['@type'])));
    }
    for (const key of Object.keys(obj)) {
      if (key !== '@type' && key !== 'value') this.add(joinPath(path, key), `unknown field "${key}"`);
    }
    if (!('value' in obj)) this.add(path, `missing "value" (a ${inner.fullName.slice(1)} in an Any goes under "value")`);
    else out.value = this.message(inner, obj.value, joinPath(path, 'value'));
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

/** Walks json against type: reports every issue with its path; returns a copy whose keys are the proto field names. */
export function normalizeProto3Json(type: protobuf.Type, json: unknown, path: string): { value: unknown; issues: ConfigIssue[] } {
  const walker = new Walker();
  const value = walker.message(type, json, path);
  return { value, issues: walker.issues };
}

/** normalize, then (only if no issues) fromProto3JSON + wrap thrown errors as an issue at `path`. */
export function decodeProto3Json(type: protobuf.Type, json: unknown, path: string): DecodedJson {
  const { value, issues } = normalizeProto3Json(type, json, path);
  if (issues.length > 0) return { issues };
  try {
    const message = fromProto3JSON(type, value as JSONValue);
    // Only a top-level null decodes to null, and normalize already rejects that; stay safe.
    if (message === null) return { issues: [{ path, message: `expected an object, got null` }] };
    return { message, issues: [] };
  } catch (err) {
    return { issues: [{ path, message: err instanceof Error ? err.message : String(err) }] };
  }
}
