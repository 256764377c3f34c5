import * as protobuf from 'protobufjs';
import { ENVOY_UNDECLARED_FIELDS } from './envoy-fields';
import { type ConfigIssue, joinPath } from './errors';
import { typeForUrl } from './proto';

// protobuf decoding skips fields a message does not declare. Over xDS that would run a resource
// without, say, its transport_socket. This walks the wire bytes beside the decode and names every
// field of Envoy's that proto/ leaves out, at its path, so the resource is NACKed rather than run
// half-read. Fields Envoy does not know either (newer versions) stay skipped, as protobuf does.

const MAX_DEPTH = 64;
const ANY = '.google.protobuf.Any';

const byIdCache = new WeakMap<protobuf.Type, Map<number, string>>();

function undeclaredName(type: protobuf.Type, id: number): string | undefined {
  let map = byIdCache.get(type);
  if (!map) {
    map = new Map(Object.entries(ENVOY_UNDECLARED_FIELDS[type.fullName.slice(1)] ?? {}).map(([name, n]) => [n, name]));
    byIdCache.set(type, map);
  }
  return map.get(id);
}

/** Every Envoy field set in `bytes` that our declaration of `type` leaves out, by field path. */
export function undeclaredWireFields(type: protobuf.Type, bytes: Uint8Array, path: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  walk(type, bytes, path, issues, 0);
  return issues;
}

function walk(type: protobuf.Type, bytes: Uint8Array, path: string, issues: ConfigIssue[], depth: number): void {
  if (depth > MAX_DEPTH) return;
  const reader = protobuf.Reader.create(bytes);
  const seen = new Map<number, number>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const id = tag >>> 3;
    const wireType = tag & 7;
    const field = type.fieldsById[id];
    if (!field) {
      const name = undeclaredName(type, id);
      const at = name === undefined ? '' : joinPath(path, name);
      if (name !== undefined && !issues.some((i) => i.path === at)) issues.push({ path: at, message: 'not supported by sidemirror' });
      reader.skipType(wireType);
      continue;
    }
    field.resolve();
    const at = joinPath(path, field.name);
    if (wireType !== 2) {
      reader.skipType(wireType);
      continue;
    }
    const sub = reader.bytes();
    if (field instanceof protobuf.MapField) {
      mapEntry(field, sub, at, issues, depth);
      continue;
    }
    const t = field.resolvedType;
    if (!(t instanceof protobuf.Type)) continue;
    const index = seen.get(id) ?? 0;
    seen.set(id, index + 1);
    message(t, sub, field.repeated ? `${at}[${index}]` : at, issues, depth);
  }
}

function message(t: protobuf.Type, bytes: Uint8Array, path: string, issues: ConfigIssue[], depth: number): void {
  if (t.fullName !== ANY) return walk(t, bytes, path, issues, depth + 1);
  // An Any's content sits at the Any's own path (`typed_config.stat_prefix`), as in proto3 JSON.
  let url = '';
  let value: Uint8Array | null = null;
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === (1 << 3 | 2)) url = reader.string();
    else if (tag === (2 << 3 | 2)) value = reader.bytes();
    else reader.skipType(tag & 7);
  }
  const inner = url ? typeForUrl(url) : undefined;
  if (inner && value) walk(inner, value, path, issues, depth + 1);
}

function mapEntry(field: protobuf.MapField, bytes: Uint8Array, path: string, issues: ConfigIssue[], depth: number): void {
  const t = field.resolvedType;
  if (!(t instanceof protobuf.Type)) return;
  let key = '';
  let value: Uint8Array | null = null;
  const reader = protobuf.Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === (1 << 3 | 2) && field.keyType === 'string') key = reader.string();
    else if (tag === (2 << 3 | 2)) value = reader.bytes();
    else reader.skipType(tag & 7);
  }
  if (value) message(t, value, `${path}["${key}"]`, issues, depth);
}
