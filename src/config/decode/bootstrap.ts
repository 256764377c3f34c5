import * as path from 'node:path';
import type { Bootstrap, DynamicResources, OverloadManagerConfig, RuntimeLayerConfig } from '../model';
import type { Secret } from '../transport-model';
import { type Ctx, type Pb, adsConfigSource, at, atIndex, atKey, durationMs, each, fail, refuse, socketAddress, typeUrlName, unpackAny, withRuntimeRe2Limit } from './common';
import { decodeCluster } from './cluster';
import { decodeListener } from './listener';
import { decodeSecret } from './tls';

export function decodeBootstrap(b: Pb, ctx: Ctx): Bootstrap {
  const node = (b.node ?? {}) as Pb;
  const sr = (b.static_resources ?? {}) as Pb;
  const runtime = decodeLayeredRuntime(b.layered_runtime as Pb | undefined, String(node.cluster ?? ''), at(ctx, 'layered_runtime'));
  // The runtime's regex program-size ceiling applies to the static resources' regexes.
  const srctx = at(withRuntimeRe2Limit(ctx, staticValues(runtime)), 'static_resources');
  const admin = b.admin as Pb | undefined;
  // Envoy itself overwrites user_agent_* and client_features; metadata and locality would go to the control plane, which we do not send.
  refuse(node, at(ctx, 'node'), ['metadata', 'locality']);
  refuse(admin, at(ctx, 'admin'), ['profile_path', 'access_log']);
  // Envoy's examples send the admin access log to /dev/null, which is what not having one does.
  if (admin?.access_log_path && admin.access_log_path !== '/dev/null') fail(at(at(ctx, 'admin'), 'access_log_path'), 'not supported by sidemirror (only /dev/null)');
  return {
    node: { id: String(node.id ?? ''), cluster: String(node.cluster ?? '') },
    admin: admin ? { address: socketAddress(admin.address as Pb | undefined, at(at(ctx, 'admin'), 'address')) } : null,
    listeners: each(srctx, sr, 'listeners', decodeListener),
    clusters: each(srctx, sr, 'clusters', decodeCluster),
    runtime,
    dynamicResources: b.dynamic_resources ? decodeDynamicResources(b.dynamic_resources as Pb, at(ctx, 'dynamic_resources')) : null,
    overloadManager: decodeOverloadManager(b.overload_manager as Pb | undefined, at(ctx, 'overload_manager')),
    secrets: each(srctx, sr, 'secrets', decodeSecret).filter((s): s is Secret => s !== null),
  };
}

/** The static layers' values, later layers winning (the admin layer is empty at start). */
function staticValues(layers: readonly RuntimeLayerConfig[]): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const l of layers) if (l.kind === 'static') for (const [k, v] of l.values) out.set(k, v);
  return out;
}

const GLOBAL_CX_MONITOR = 'envoy.resource_monitors.global_downstream_max_connections';
const DOWNSTREAM_CX_CONFIG = 'envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig';

/**
 * Of Envoy's overload manager, the one monitor that acts without actions or triggers: the global
 * downstream connection limit. Other monitors and every action are refused, not ignored.
 */
function decodeOverloadManager(o: Pb | undefined, ctx: Ctx): OverloadManagerConfig {
  let max: number | null = null;
  if (!o) return { maxActiveDownstreamConnections: max };
  if ((o.actions as Pb[] | undefined)?.length) fail(at(ctx, 'actions'), 'overload actions are not supported by sidemirror');
  ((o.resource_monitors as Pb[] | undefined) ?? []).forEach((m, i) => {
    const mctx = at(ctx, `resource_monitors[${i}]`);
    const name = String(m.name ?? '');
    const cfg = unpackAny(m.typed_config as Pb | undefined, at(mctx, 'typed_config'));
    if (name !== GLOBAL_CX_MONITOR && (!cfg || typeUrlName(cfg.typeUrl) !== DOWNSTREAM_CX_CONFIG)) {
      fail(at(mctx, 'name'), `resource monitor "${name}" is not supported by sidemirror; only ${GLOBAL_CX_MONITOR} is`);
      return;
    }
    if (!cfg || typeUrlName(cfg.typeUrl) !== DOWNSTREAM_CX_CONFIG) {
      fail(at(mctx, 'typed_config'), `typed_config must be ${DOWNSTREAM_CX_CONFIG}`);
      return;
    }
    if (max !== null) fail(mctx, `${GLOBAL_CX_MONITOR} may be configured once`);
    const n = Number(cfg.value.max_active_downstream_connections ?? 0);
    if (!Number.isSafeInteger(n) || n <= 0) fail(at(at(mctx, 'typed_config'), 'max_active_downstream_connections'), 'must be greater than 0');
    else max = n;
  });
  return { maxActiveDownstreamConnections: max };
}

function decodeDynamicResources(d: Pb, ctx: Ctx): DynamicResources {
  const ads = d.ads_config as Pb | undefined;
  let adsClusterName: string | null = null;
  let adsInitialMetadata: DynamicResources['adsInitialMetadata'] = [];
  let adsMaxReceiveMessageBytes: number | null = null;
  if (ads) {
    const actx = at(ctx, 'ads_config');
    if (ads.api_type && ads.api_type !== 'GRPC') fail(at(actx, 'api_type'), `api_type ${ads.api_type} is not supported; use GRPC`);
    refuse(ads, actx, ['cluster_names', 'refresh_delay', 'request_timeout']);
    if (ads.transport_api_version === 'V2') fail(at(actx, 'transport_api_version'), 'V2 is not supported; use V3');
    const services = (ads.grpc_services as Pb[] | undefined) ?? [];
    if (services.length > 1) fail(at(actx, 'grpc_services'), 'only one gRPC service is supported');
    const service = services[0] ?? {};
    const sctx = atIndex(actx, 'grpc_services', 0);
    refuse(service, sctx, ['timeout']);
    const envoyGrpc = service.envoy_grpc as Pb | undefined;
    refuse(envoyGrpc, at(sctx, 'envoy_grpc'), ['authority']);
    adsClusterName = envoyGrpc?.cluster_name ? String(envoyGrpc.cluster_name) : null;
    if (!adsClusterName) fail(at(actx, 'grpc_services[0].envoy_grpc.cluster_name'), 'cluster_name is required');
    adsInitialMetadata = each(sctx, service, 'initial_metadata', grpcMetadata);
    const max = envoyGrpc?.max_receive_message_length as Pb | undefined;
    if (max) adsMaxReceiveMessageBytes = Number(max.value ?? 0);
  }
  const viaAds = (src: Pb | undefined): boolean => Boolean(src && src.ads !== undefined);
  // The xDS client subscribes to listeners and clusters over ADS: the bootstrap must say so.
  for (const field of ['lds_config', 'cds_config'] as const) {
    const src = d[field] as Pb | undefined;
    adsConfigSource(src, at(ctx, field));
    if (!viaAds(src)) fail(at(ctx, field), `${field} must be { ads: {} } (sidemirror takes listeners and clusters over ADS)`);
  }
  if (!ads) fail(at(ctx, 'ads_config'), 'ads_config is required');
  // Envoy waits for each subscription's first response at most its initial_fetch_timeout
  // (default 15 s; 0: without limit); serving starts when both CDS and LDS are in, so the longer wins.
  const fetchTimeouts = [d.cds_config, d.lds_config].map((src) => durationMs((src as Pb | undefined)?.initial_fetch_timeout as Pb | undefined, 15_000));
  return {
    adsClusterName, adsInitialMetadata, adsMaxReceiveMessageBytes,
    ldsViaAds: viaAds(d.lds_config as Pb | undefined), cdsViaAds: viaAds(d.cds_config as Pb | undefined),
    initialFetchTimeoutMs: fetchTimeouts.includes(0) ? Infinity : Math.max(...fetchTimeouts),
  };
}

/** One HeaderValue of initial_metadata, as gRPC metadata: lower-case ASCII keys, text values only. */
function grpcMetadata(h: Pb, ctx: Ctx): { key: string; value: string } {
  const key = String(h.key ?? '');
  const raw = h.raw_value as Uint8Array | undefined;
  const value = raw && raw.length > 0 ? Buffer.from(raw).toString('utf8') : String(h.value ?? '');
  if (!/^[0-9a-z_.-]+$/.test(key)) fail(at(ctx, 'key'), `"${key}" is not a gRPC metadata key (lower-case letters, digits, "-", "_", ".")`);
  else if (key.endsWith('-bin')) fail(at(ctx, 'key'), 'binary metadata (a key ending in "-bin") is not supported by sidemirror');
  else if (key.startsWith('grpc-')) fail(at(ctx, 'key'), 'keys starting with "grpc-" are reserved by gRPC');
  if (/[^\x20-\x7e\t]/.test(value)) fail(at(ctx, raw && raw.length > 0 ? 'raw_value' : 'value'), 'a gRPC metadata value must be printable ASCII');
  return { key, value };
}

/** Envoy's default when layered_runtime is absent: an empty static layer below an admin layer. */
const DEFAULT_RUNTIME: readonly RuntimeLayerConfig[] = [
  { name: 'static_layer', kind: 'static', values: new Map() },
  { name: 'admin', kind: 'admin' },
];

/** `layered_runtime`: static layers flattened (nested keys joined with dots), disk layers, and at most one admin layer. */
function decodeLayeredRuntime(lr: Pb | undefined, serviceCluster: string, ctx: Ctx): readonly RuntimeLayerConfig[] {
  if (!lr) return DEFAULT_RUNTIME;
  const names = new Set<string>();
  let admins = 0;
  const layers = each(ctx, lr, 'layers', (layer, lctx): RuntimeLayerConfig | null => {
    const name = String(layer.name ?? '');
    // Envoy refuses two layers of one name and more than one admin layer.
    if (names.has(name)) fail(at(lctx, 'name'), `duplicate layer name "${name}"`);
    names.add(name);
    if (layer.admin_layer) {
      if (++admins > 1) fail(at(lctx, 'admin_layer'), 'at most one admin layer may be given');
      return { name, kind: 'admin' };
    }
    if (layer.static_layer) {
      const values = new Map<string, string>();
      flattenStruct(layer.static_layer as Pb, '', values, at(lctx, 'static_layer'));
      return { name, kind: 'static', values };
    }
    if (layer.disk_layer) return decodeDiskLayer(name, layer.disk_layer as Pb, serviceCluster, at(lctx, 'disk_layer'));
    fail(lctx, 'one of static_layer, disk_layer or admin_layer is required');
    return null;
  });
  if (layers.length === 0) fail(at(ctx, 'layers'), 'at least one layer is required');
  return layers.filter((l): l is RuntimeLayerConfig => l !== null);
}

function decodeDiskLayer(name: string, d: Pb, serviceCluster: string, ctx: Ctx): RuntimeLayerConfig | null {
  const symlinkRoot = String(d.symlink_root ?? '');
  const subdirectory = String(d.subdirectory ?? '');
  if (symlinkRoot === '') fail(at(ctx, 'symlink_root'), 'symlink_root is required');
  else if (!path.isAbsolute(symlinkRoot)) fail(at(ctx, 'symlink_root'), 'symlink_root must be an absolute path');
  if (subdirectory.split('/').includes('..')) fail(at(ctx, 'subdirectory'), 'subdirectory must not climb out of symlink_root ("..")');
  const parts = [symlinkRoot, subdirectory];
  if (d.append_service_cluster === true) {
    if (serviceCluster === '') fail(at(ctx, 'append_service_cluster'), 'append_service_cluster needs node.cluster to be set');
    else if (serviceCluster.includes('/') || serviceCluster === '..') fail(at(ctx, 'append_service_cluster'), `node.cluster "${serviceCluster}" cannot name a directory`);
    parts.push(serviceCluster);
  }
  if (symlinkRoot === '' || !path.isAbsolute(symlinkRoot)) return null;
  return { name, kind: 'disk', symlinkRoot, directory: path.join(...parts) };
}

// protobufjs declares google.protobuf.Struct/Value with camelCase field names even under keepCase.
const field = (v: Pb, snake: string, camel: string): unknown => v[camel] ?? v[snake];

/** Envoy's static layer walk: scalars by their text, nested objects by dotted keys; a FractionalPercent object stays one entry. */
function flattenStruct(struct: Pb, prefix: string, out: Map<string, string>, ctx: Ctx): void {
  for (const [k, raw] of Object.entries((struct.fields ?? {}) as Pb)) {
    const key = prefix ? `${prefix}.${k}` : k;
    const value = raw as Pb;
    const nested = field(value, 'struct_value', 'structValue') as Pb | undefined;
    const number = field(value, 'number_value', 'numberValue');
    const str = field(value, 'string_value', 'stringValue');
    const bool = field(value, 'bool_value', 'boolValue');
    if (nested) {
      const inner = (nested.fields ?? {}) as Pb;
      if ('numerator' in inner || 'denominator' in inner) out.set(key, fractionText(inner, atKey(ctx, key)));
      else flattenStruct(nested, key, out, ctx);
    } else if (number !== undefined) out.set(key, String(number));
    else if (str !== undefined) out.set(key, String(str));
    else if (bool !== undefined) out.set(key, String(bool));
    else fail(atKey(ctx, key), 'a runtime value must be a number, string, boolean or object (not null or a list)');
  }
}

/** A FractionalPercent given as an object, kept as the JSON the runtime reads back. */
function fractionText(fields: Pb, ctx: Ctx): string {
  const numerator = Number(field((fields.numerator ?? {}) as Pb, 'number_value', 'numberValue') ?? 0);
  const denominator = String(field((fields.denominator ?? {}) as Pb, 'string_value', 'stringValue') ?? 'HUNDRED');
  if (!Number.isInteger(numerator) || numerator < 0) fail(at(ctx, 'numerator'), 'must be a non-negative integer');
  if (!['HUNDRED', 'TEN_THOUSAND', 'MILLION'].includes(denominator)) fail(at(ctx, 'denominator'), 'must be HUNDRED, TEN_THOUSAND or MILLION');
  return JSON.stringify({ numerator, denominator });
}
