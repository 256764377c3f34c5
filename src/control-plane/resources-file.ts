import type * as protobuf from 'protobufjs';
import { ConfigError, type ConfigIssue, IssueCollector, joinPath } from '../config/errors';
import { parseYamlOrJson } from '../config/load';
import { parseStrictJson } from './strict-json';
import { decodeProto3Json } from '../config/proto-json';
import {
  type ResourceModels,
  type ResourceTypeUrl,
  decodeResource,
  isResourceType,
  resourceMessageType,
} from '../config/resources';

// The control plane's input: Envoy's file-subscription shape (a DiscoveryResponse written as
// YAML: `version_info` and a `resources:` list whose items carry `@type`), mixing the five xDS
// types (secrets included) in one list, plus sidemirror's `node_overrides` for per-node differences. Everything is
// decoded and validated here, once, so the cache and the server only ever see good resources.

/** One decoded resource, with its wire bytes computed once for every response that carries it. */
export interface ResourceEntry<T extends ResourceTypeUrl = ResourceTypeUrl> {
  readonly typeUrl: T;
  readonly name: string;
  readonly message: protobuf.Message;
  /** The encoded message: the `value` of the Any in a DiscoveryResponse. */
  readonly bytes: Uint8Array;
  readonly model: ResourceModels[T];
  /** Where the resource was written (`resources[3]`), so consistency issues point into the file. */
  readonly path: string;
}

/** Resources by type, then by name (insertion order = file order). */
export type ResourceMap = ReadonlyMap<ResourceTypeUrl, ReadonlyMap<string, ResourceEntry>>;

export type NodeMatch = { readonly kind: 'id' | 'cluster'; readonly value: string };

export interface NodeOverride {
  readonly match: NodeMatch;
  readonly resources: ResourceMap;
  /** `node_overrides[2]`. */
  readonly path: string;
}

export interface ResourceSet {
  /** The file's own `version_info`, or null when it has none. */
  readonly versionInfo: string | null;
  readonly base: ResourceMap;
  readonly overrides: readonly NodeOverride[];
}

export const EMPTY_RESOURCE_SET: ResourceSet = { versionInfo: null, base: new Map(), overrides: [] };

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const TOP_LEVEL_KEYS = new Set(['version_info', 'resources', 'node_overrides']);

/** Text (YAML or JSON) → a validated ResourceSet, or a ConfigError listing every issue by path. */
export function parseResourcesText(text: string): ResourceSet | ConfigError {
  const json = parseStrictJson(text);
  if (json !== undefined) return parseResourcesDocument(json);
  const issues = new IssueCollector();
  const doc = parseYamlOrJson(text, issues);
  if (!issues.ok) return new ConfigError(issues.issues);
  return parseResourcesDocument(doc);
}

/** The already-parsed document (e.g. a JSON request body) → ResourceSet or ConfigError. */
export function parseResourcesDocument(doc: unknown): ResourceSet | ConfigError {
  const issues = new IssueCollector();
  if (!isObject(doc)) {
    return new ConfigError([{ path: '', message: 'the resources document must be a mapping with a "resources" list' }]);
  }
  for (const key of Object.keys(doc)) {
    if (!TOP_LEVEL_KEYS.has(key)) issues.add(key, `unknown field "${key}" (expected version_info, resources, node_overrides)`);
  }
  let versionInfo: string | null = null;
  if (doc.version_info !== undefined && doc.version_info !== null) {
    // proto3 JSON spells version_info as a string; a bare YAML number would be a silent coercion.
    if (typeof doc.version_info === 'string') versionInfo = doc.version_info || null;
    else issues.add('version_info', `expected a string, got ${typeof doc.version_info} (quote it)`);
  }
  const base = decodeResourceList(doc.resources, 'resources', issues);
  const overrides = decodeOverrides(doc.node_overrides, issues);
  if (!issues.ok) return new ConfigError(issues.issues);
  return { versionInfo, base, overrides };
}

function decodeOverrides(v: unknown, issues: IssueCollector): NodeOverride[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    issues.add('node_overrides', 'expected a list');
    return [];
  }
  const seen = new Map<string, string>();
  return v.flatMap((o: unknown, i): NodeOverride[] => {
    const path = `node_overrides[${i}]`;
    if (!isObject(o)) {
      issues.add(path, 'expected a mapping with "node" and "resources"');
      return [];
    }
    for (const key of Object.keys(o)) {
      if (key !== 'node' && key !== 'resources') issues.add(joinPath(path, key), `unknown field "${key}" (expected node, resources)`);
    }
    const match = decodeNodeMatch(o.node, joinPath(path, 'node'), issues);
    const resources = decodeResourceList(o.resources, joinPath(path, 'resources'), issues);
    if (!match) return [];
    // Two overrides for the same node would make the result depend on their order; say so instead.
    const key = `${match.kind}:${match.value}`;
    const earlier = seen.get(key);
    if (earlier) issues.add(joinPath(path, 'node'), `another override (${earlier}) already matches node ${match.kind} "${match.value}"`);
    seen.set(key, path);
    return [{ match, resources, path }];
  });
}

function decodeNodeMatch(v: unknown, path: string, issues: IssueCollector): NodeMatch | null {
  if (!isObject(v)) {
    issues.add(path, 'expected a mapping with exactly one of "id", "cluster"');
    return null;
  }
  const keys = Object.keys(v);
  const unknown = keys.filter((k) => k !== 'id' && k !== 'cluster');
  for (const k of unknown) issues.add(joinPath(path, k), `unknown field "${k}" (expected id or cluster)`);
  const given = keys.filter((k) => k === 'id' || k === 'cluster') as Array<'id' | 'cluster'>;
  if (given.length !== 1) {
    issues.add(path, 'exactly one of "id", "cluster" must be set');
    return null;
  }
  const kind = given[0]!;
  const value = v[kind];
  if (typeof value !== 'string' || !value) {
    issues.add(joinPath(path, kind), 'expected a non-empty string');
    return null;
  }
  return unknown.length ? null : { kind, value };
}

function decodeResourceList(v: unknown, path: string, issues: IssueCollector): ResourceMap {
  const out = new Map<ResourceTypeUrl, Map<string, ResourceEntry>>();
  if (v === undefined || v === null) return out;
  if (!Array.isArray(v)) {
    issues.add(path, 'expected a list of resources, each with "@type"');
    return out;
  }
  v.forEach((item: unknown, i) => {
    const entry = decodeOne(item, `${path}[${i}]`, issues);
    if (!entry) return;
    let byName = out.get(entry.typeUrl);
    if (!byName) out.set(entry.typeUrl, (byName = new Map()));
    const earlier = byName.get(entry.name);
    // The same name twice in one response makes a client NACK; catch it at the source.
    if (earlier) issues.add(entry.path, `duplicate ${kindOf(entry.typeUrl)} "${entry.name}" (also at ${earlier.path})`);
    else byName.set(entry.name, entry);
  });
  return out;
}

function kindOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

function decodeOne(item: unknown, path: string, issues: IssueCollector): ResourceEntry | null {
  if (!isObject(item)) {
    issues.add(path, 'expected a resource mapping with "@type"');
    return null;
  }
  const { '@type': typeUrl, ...fields } = item;
  if (typeof typeUrl !== 'string') {
    issues.add(typeUrl === undefined ? path : joinPath(path, '@type'), typeUrl === undefined ? 'missing "@type"' : 'expected a type URL string');
    return null;
  }
  if (!isResourceType(typeUrl)) {
    issues.add(joinPath(path, '@type'),
      `unsupported type "${typeUrl}" (Listener, RouteConfiguration, Cluster and ClusterLoadAssignment under type.googleapis.com/envoy.config.*.v3, and type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret, are)`);
    return null;
  }
  const type = resourceMessageType(typeUrl);
  const json = decodeProto3Json(type, fields, path);
  if (!json.message) {
    issues.addAll(json.issues);
    return null;
  }
  const decoded = decodeResource(typeUrl, json.message);
  if (!decoded.ok) {
    issues.addAll(relocate(decoded.issues, `${type.name} "${decoded.name}"`, path));
    return null;
  }
  return { typeUrl, name: decoded.name, message: json.message, bytes: type.encode(json.message).finish(), model: decoded.value, path };
}

/**
 * decodeResource names a resource by kind and name (`Cluster "a".load_assignment`), which is right
 * for xDS; in a file the user needs the position (`resources[3].load_assignment`), so swap the prefix.
 */
function relocate(issues: readonly ConfigIssue[], prefix: string, path: string): ConfigIssue[] {
  return issues.map((i) => {
    const rest = i.path.startsWith(prefix) ? i.path.slice(prefix.length) : null;
    if (rest !== null && (rest === '' || rest[0] === '.' || rest[0] === '[')) return { path: path + rest, message: i.message };
    return { path: joinPath(path, i.path), message: i.message };
  });
}
