// Checks that our hand-written Envoy proto subset (proto/) is wire- and schema-compatible
// with the real Envoy protos bundled in @grpc/grpc-js-xds (deps/envoy-api etc.).
import * as fs from 'fs';
import * as path from 'path';
import * as protobuf from 'protobufjs';

const REPO = path.resolve(__dirname, '../..');
const OURS = path.join(REPO, 'proto');
const DEPS = path.join(REPO, 'node_modules/@grpc/grpc-js-xds/deps');
// protobufjs ships google/protobuf/descriptor.proto (imported by the udpa/validate annotations).
const REAL_INCLUDES = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate']
  .map((d) => path.join(DEPS, d))
  .concat(path.dirname(require.resolve('protobufjs/package.json')));

// Fields from newer Envoy (data-plane-api 2025+) that the bundled, older protos lack.
const NEWER = new Set([
  '.envoy.config.route.v3.RouteAction.RequestMirrorPolicy.request_headers_mutations',
  '.envoy.config.route.v3.RouteAction.RequestMirrorPolicy.host_rewrite_literal',
  '.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.request_mirror_policies',
  '.envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.auto_host_sni',
  '.envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.auto_sni_san_validation',
]);

const OPTS: protobuf.IConversionOptions = { longs: String, enums: String, bytes: String, defaults: false };
type Obj = Record<string, unknown>;

function protoFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return protoFiles(p);
    return e.name.endsWith('.proto') ? [path.relative(OURS, p)] : [];
  });
}

function loadRoot(includes: string[], files: string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const inc of includes) {
      const p = path.join(inc, target);
      if (fs.existsSync(p)) return p;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

// sidemirror's own extension protos have no Envoy counterpart; they are loaded on our side only.
const files = protoFiles(OURS);
const envoyFiles = files.filter((f) => !f.startsWith(`sidemirror${path.sep}`));
// descriptor.proto (extended by udpa.annotations.sensitive) comes from protobufjs, as at run time.
const ours = loadRoot([OURS, path.dirname(require.resolve('protobufjs/package.json'))], files);
const real = loadRoot(REAL_INCLUDES, envoyFiles);

function collect(ns: protobuf.NamespaceBase, out: protobuf.ReflectionObject[] = []): protobuf.ReflectionObject[] {
  for (const obj of ns.nestedArray) {
    // Only objects parsed from proto/ (skip protobufjs' bundled google.protobuf types).
    if (obj.filename?.startsWith(OURS) && !obj.filename.startsWith(path.join(OURS, 'sidemirror'))) out.push(obj);
    if (obj instanceof protobuf.Namespace) collect(obj, out);
  }
  return out;
}
const all = collect(ours);
const types = all.filter((o): o is protobuf.Type => o instanceof protobuf.Type);
const enums = all.filter((o): o is protobuf.Enum => o instanceof protobuf.Enum);
const services = all.filter((o): o is protobuf.Service => o instanceof protobuf.Service);

const typeName = (f: protobuf.Field): string => (f.resolvedType ? f.resolvedType.fullName : f.type);
const describe_ = (f: protobuf.Field) => ({
  id: f.id,
  type: typeName(f),
  repeated: f.repeated,
  map: f instanceof protobuf.MapField ? f.keyType : null,
  oneof: f.partOf ? f.partOf.name : null,
});

// Deterministic sample filling every declared field. `variant` picks which oneof member is set.
function sample(t: protobuf.Type, variant: number, withNewer: boolean, depth = 0): Obj {
  const o: Obj = {};
  for (const f of t.fieldsArray) {
    if (!withNewer && NEWER.has(`${t.fullName}.${f.name}`)) continue;
    if (f.partOf && f.partOf.fieldsArray[variant % f.partOf.fieldsArray.length] !== f) continue;
    const v = value(f, variant, withNewer, depth);
    if (v === undefined) continue;
    if (f instanceof protobuf.MapField) o[f.name] = { [f.keyType === 'string' ? 'k1' : '1']: v };
    else o[f.name] = f.repeated && !(f.resolvedType instanceof protobuf.Type) ? [v, v] : f.repeated ? [v] : v;
  }
  return o;
}

function value(f: protobuf.Field, variant: number, withNewer: boolean, depth: number): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return depth >= 5 ? undefined : sample(rt, variant, withNewer, depth + 1);
  if (rt instanceof protobuf.Enum) {
    // The last value, by the name decoding gives it (aliased enums, such as gzip's compression levels, have several).
    const last = Object.values(rt.values)[Object.keys(rt.values).length - 1]!;
    return rt.valuesById[last];
  }
  switch (f.type) {
    case 'string': return `${f.name}-${f.id}`;
    case 'bool': return true;
    case 'bytes': return Buffer.from(`${f.name}-bytes`).toString('base64');
    case 'double': case 'float': return f.id + 0.5;
    case 'int64': case 'sint64': case 'sfixed64': return String(-(1000 + f.id));
    case 'uint64': case 'fixed64': return String(1000 + f.id);
    case 'int32': case 'sint32': case 'sfixed32': return -(100 + f.id);
    default: return 100 + f.id; // uint32 / fixed32
  }
}

const maxOneof = (t: protobuf.Type): number => Math.max(1, ...t.oneofsArray.map((o) => o.fieldsArray.length));

describe('proto/ subset vs Envoy protos bundled in @grpc/grpc-js-xds', () => {
  it('declares a reasonable set of files and types', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    expect(types.length).toBeGreaterThan(80);
  });

  it.each(types.map((t) => [t.fullName, t] as const))('%s: fields match Envoy (name, number, type, label, oneof)', (_n, t) => {
    const rt = real.lookup(t.fullName);
    expect(rt).toBeInstanceOf(protobuf.Type);
    const r = rt as protobuf.Type;
    for (const f of t.fieldsArray) {
      const key = `${t.fullName}.${f.name}`;
      if (NEWER.has(key)) {
        expect(r.fields[f.name]).toBeUndefined(); // still absent in the bundled (older) protos
        expect(r.fieldsById[f.id]).toBeUndefined(); // and its number is unused there
        continue;
      }
      expect(r.fields[f.name]).toBeDefined();
      expect({ key, ...describe_(f) }).toEqual({ key, ...describe_(r.fields[f.name]) });
    }
  });

  it.each(enums.map((e) => [e.fullName, e] as const))('enum %s matches Envoy', (_n, e) => {
    const re = real.lookup(e.fullName);
    expect(re).toBeInstanceOf(protobuf.Enum);
    expect(e.values).toEqual((re as protobuf.Enum).values);
  });

  it.each(types.map((t) => [t.fullName, t] as const))('%s: ours -> Envoy -> ours round trip', (_n, t) => {
    const r = real.lookupType(t.fullName);
    for (let variant = 0; variant < maxOneof(t); variant++) {
      const full = sample(t, variant, true);
      const known = sample(t, variant, false); // without NEWER fields
      const buf = t.encode(t.fromObject(full)).finish();
      expect(t.toObject(t.decode(buf), OPTS)).toEqual(full);

      // Envoy decodes every field we set to the same value (NEWER ones are skipped as unknown).
      const envoyMsg = r.decode(buf);
      expect(r.toObject(envoyMsg, OPTS)).toEqual(known);

      // Envoy's re-encoding decodes back with ours to the same object.
      const buf2 = r.encode(envoyMsg).finish();
      expect(t.toObject(t.decode(buf2), OPTS)).toEqual(known);
    }
  });

  it('NEWER mirror fields round-trip through our protos and are ignored by the old ones', () => {
    const rmp = ours.lookupType('envoy.config.route.v3.RouteAction.RequestMirrorPolicy');
    const obj = {
      cluster: 'shadow',
      request_headers_mutations: [{ remove: 'x-drop' }, { append: { header: { key: 'x-m', value: '1' } } }],
      host_rewrite_literal: 'mirror.local',
    };
    const buf = rmp.encode(rmp.fromObject(obj)).finish();
    expect(rmp.toObject(rmp.decode(buf), OPTS)).toEqual(obj);
    const oldRmp = real.lookupType(rmp.fullName);
    expect(oldRmp.toObject(oldRmp.decode(buf), OPTS)).toEqual({ cluster: 'shadow' });

    const hpo = ours.lookupType('envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
    const hobj = { request_mirror_policies: [{ cluster: 'c1' }, { cluster_header: 'x-c' }] };
    expect(hpo.toObject(hpo.decode(hpo.encode(hpo.fromObject(hobj)).finish()), OPTS)).toEqual(hobj);
  });

  const SERVICES = [
    'envoy.service.discovery.v3.AggregatedDiscoveryService',
    'envoy.service.listener.v3.ListenerDiscoveryService',
    'envoy.service.route.v3.RouteDiscoveryService',
    'envoy.service.cluster.v3.ClusterDiscoveryService',
    'envoy.service.endpoint.v3.EndpointDiscoveryService',
  ];
  const methods = (s: protobuf.Service) =>
    Object.fromEntries(
      s.methodsArray.map((m) => [
        m.name,
        {
          req: m.resolvedRequestType?.fullName,
          res: m.resolvedResponseType?.fullName,
          reqStream: !!m.requestStream,
          resStream: !!m.responseStream,
        },
      ]),
    );

  it('declares exactly the ADS and four per-type discovery services', () => {
    expect(services.map((s) => s.fullName.slice(1)).sort()).toEqual([...SERVICES].sort());
  });

  it.each(SERVICES)('service %s matches Envoy (methods, types, streaming)', (name) => {
    const mine = methods(ours.lookupService(name));
    expect(mine).toEqual(methods(real.lookupService(name)));
    expect(Object.keys(mine).length).toBe(name.includes('Aggregated') ? 2 : 3);
  });
});
