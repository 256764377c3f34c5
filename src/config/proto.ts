import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

// The one place that loads proto/. Everything else asks this module for types by full name.

let cachedRoot: protobuf.Root | undefined;

/** Finds the project's proto/ folder whether we run from src/ (ts-jest) or dist/src/ (built). */
export function protoDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'proto', 'envoy');
    if (fs.existsSync(candidate)) return path.join(dir, 'proto');
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`proto/ not found above ${__dirname}`);
    dir = parent;
  }
}

function listProtoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listProtoFiles(full));
    else if (entry.name.endsWith('.proto')) out.push(full);
  }
  return out.sort();
}

/** The root holding every message of proto/, field names kept in snake_case as written. */
export function protoRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const base = protoDir();
  const root = new protobuf.Root();
  const builtin = root.resolvePath;
  // protobufjs ships google/protobuf/descriptor.proto (which annotations such as
  // udpa.annotations.sensitive extend) as a file, not among its bundled definitions.
  const shipped = path.dirname(require.resolve('protobufjs/package.json'));
  root.resolvePath = (origin, target) => {
    const local = path.join(base, target);
    if (fs.existsSync(local)) return local;
    const fromProtobufjs = path.join(shipped, target);
    if (target.startsWith('google/protobuf/') && fs.existsSync(fromProtobufjs)) return fromProtobufjs;
    return builtin.call(root, origin, target);
  };
  root.loadSync(listProtoFiles(base), { keepCase: true });
  root.resolveAll();
  cachedRoot = root;
  return root;
}

/** Looks up a message type by its full name (`envoy.config.cluster.v3.Cluster`). */
export function messageType(fullName: string): protobuf.Type {
  return protoRoot().lookupType(fullName);
}

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** `type.googleapis.com/a.b.C` → the type `a.b.C`, or undefined when we do not declare it. */
export function typeForUrl(typeUrl: string): protobuf.Type | undefined {
  const slash = typeUrl.lastIndexOf('/');
  const name = slash >= 0 ? typeUrl.slice(slash + 1) : typeUrl;
  try {
    return protoRoot().lookupType(name);
  } catch {
    return undefined;
  }
}
