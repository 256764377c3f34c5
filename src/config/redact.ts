import * as protobuf from 'protobufjs';
import { toProto3JSON } from 'proto3-json-serializer';
import { typeForUrl } from './proto';

// Secrets out of what the admin servers show. A field is secret when its proto declares
// `[(udpa.annotations.sensitive) = true]` (Envoy's annotation: TLS private keys, redis_proxy's
// auth_password; ours: the mirror filter's RedisConnection.password and username). The rules are
// those of Envoy's MessageUtil::redact: a secret string or bytes value becomes "[redacted]", any
// other secret scalar is cleared, every field inside a secret message is secret, a map's values
// (never its keys) are redacted, and an Any is opened by its @type and redacted inside. Where
// Envoy walks the message, this walks its proto3 JSON (keys are proto field names, as
// toProto3JSON writes them with keepCase), which is what both admin servers print.

export const REDACTED = '[redacted]';

type Json = Record<string, unknown>;

const WKT = '.google.protobuf.';
/** JSON of these types is not an object of their fields; inside an Any it sits under "value". */
const NOT_AN_OBJECT = new Set(['Any', 'Duration', 'FieldMask', 'ListValue', 'Struct', 'Timestamp', 'Value'].map((n) => WKT + n));
/** Wrappers are written as the bare wrapped value. */
const STRING_WRAPPERS = new Set(['StringValue', 'BytesValue'].map((n) => WKT + n));
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether a field carries (udpa.annotations.sensitive) = true. */
export function isSensitive(field: protobuf.Field): boolean {
  return field.options?.['(udpa.annotations.sensitive)'] === true;
}

/** A message as proto3 JSON with every sensitive field redacted: what an admin page may show. */
export function redactedProto3Json(message: protobuf.Message): Json {
  const type = (message as unknown as { $type: protobuf.Type }).$type;
  return redactJson(type, toProto3JSON(message)) as Json;
}

/**
 * A copy of `json` (the proto3 JSON of a `type` message) with sensitive fields redacted. Keys
 * that name no field of the type are copied as they are.
 */
export function redactJson(type: protobuf.Type, json: unknown, secret = false): unknown {
  type.resolveAll();
  const name = type.fullName;
  if (name === `${WKT}Any`) return isObject(json) ? redactAny(json, secret) : json;
  if (name === `${WKT}Struct` || name === `${WKT}Value` || name === `${WKT}ListValue`) return secret ? redactFreeForm(json) : json;
  if (STRING_WRAPPERS.has(name)) return secret ? REDACTED : json;
  if (!isObject(json)) return secret ? undefined : json; // Duration, Timestamp, FieldMask, other wrappers
  const out: Json = {};
  for (const [key, value] of Object.entries(json)) {
    const field = fieldByKey(type, key);
    if (!field) {
      setOwn(out, key, value);
      continue;
    }
    const v = redactField(field, value, secret || isSensitive(field));
    if (v !== undefined) setOwn(out, key, v);
  }
  return out;
}

const jsonNames = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

/** The field a key names: its proto name (as printed here) or its JSON name (as a user may write). */
function fieldByKey(type: protobuf.Type, key: string): protobuf.Field | undefined {
  const direct = type.fields[key];
  if (direct) return direct;
  let names = jsonNames.get(type);
  if (!names) {
    names = new Map(type.fieldsArray.map((f) => [(f.options?.json_name as string | undefined) ?? protobuf.util.camelCase(f.name), f]));
    jsonNames.set(type, names);
  }
  return names.get(key);
}

function redactField(field: protobuf.Field, value: unknown, secret: boolean): unknown {
  field.resolve();
  const rt = field.resolvedType;
  const one = (v: unknown): unknown => {
    if (rt instanceof protobuf.Type) return redactJson(rt, v, secret);
    if (!secret) return v;
    return field.type === 'string' || field.type === 'bytes' ? REDACTED : undefined;
  };
  if (field instanceof protobuf.MapField) {
    if (!isObject(value)) return value;
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      const r = one(v);
      if (r !== undefined) setOwn(out, k, r);
    }
    return out;
  }
  if (field.repeated && Array.isArray(value)) {
    const items = value.map(one).filter((v) => v !== undefined);
    return items.length > 0 ? items : undefined;
  }
  return one(value);
}

function redactAny(json: Json, secret: boolean): Json {
  const url = json['@type'];
  const inner = typeof url === 'string' ? typeForUrl(url) : undefined;
  // An Any whose type we do not declare cannot have been printed (toProto3JSON needs the type);
  // inside a secret field, nothing of it is shown.
  if (!inner) return secret ? { '@type': url } : json;
  if (NOT_AN_OBJECT.has(inner.fullName)) {
    const value = redactJson(inner, json.value, secret);
    return value === undefined ? { '@type': url } : { '@type': url, value };
  }
  const { '@type': _type, ...fields } = json;
  return { '@type': url, ...(redactJson(inner, fields, secret) as Json) };
}

/** Struct/Value/ListValue under a secret: strings become "[redacted]", other scalars null. */
function redactFreeForm(v: unknown): unknown {
  if (typeof v === 'string') return REDACTED;
  if (Array.isArray(v)) return v.map(redactFreeForm);
  if (isObject(v)) {
    const out: Json = {};
    for (const [k, x] of Object.entries(v)) setOwn(out, k, redactFreeForm(x));
    return out;
  }
  return null;
}

/** Sets an own property even for a key like `__proto__`, which a map key may be. */
function setOwn(target: Json, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
