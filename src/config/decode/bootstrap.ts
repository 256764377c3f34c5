import type { Bootstrap, DynamicResources, RuntimeLayerConfig } from '../model';
import { type Ctx, type Pb, adsConfigSource, at, atKey, each, fail, refuse, socketAddress } from './common';
import { decodeCluster } from './cluster';
import { decodeListener } from './listener';

export function decodeBootstrap(b: Pb, ctx: Ctx): Bootstrap {
  const node = (b.node ?? {}) as Pb;
  const sr = (b.static_resources ?? {}) as Pb;
  const srctx = at(ctx, 'static_resources');
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
    runtime: decodeLayeredRuntime(b.layered_runtime as Pb | undefined, at(ctx, 'layered_runtime')),
    dynamicResources: b.dynamic_resources ? decodeDynamicResources(b.dynamic_resources as Pb, at(ctx, 'dynamic_resources')) : null,
  };
}

function decodeDynamicResources(d: Pb, ctx: Ctx): DynamicResources {
  const ads = d.ads_config as Pb | undefined;
  let adsClusterName: string | null = null;
  if (ads) {
    const actx = at(ctx, 'ads_config');
    if (ads.api_type && ads.api_type !== 'GRPC') fail(at(actx, 'api_type'), `api_type ${ads.api_type} is not supported; use GRPC`);
    refuse(ads, actx, ['cluster_names', 'refresh_delay', 'request_timeout']);
    if (ads.transport_api_version === 'V2') fail(at(actx, 'transport_api_version'), 'V2 is not supported; use V3');
    const services = (ads.grpc_services as Pb[] | undefined) ?? [];
    if (services.length > 1) fail(at(actx, 'grpc_services'), 'only one gRPC service is supported');
    refuse(services[0], at(actx, 'grpc_services[0]'), ['timeout', 'initial_metadata']);
    refuse(services[0]?.envoy_grpc as Pb | undefined, at(actx, 'grpc_services[0].envoy_grpc'), ['authority']);
    const envoyGrpc = services[0]?.envoy_grpc as Pb | undefined;
    adsClusterName = envoyGrpc?.cluster_name ? String(envoyGrpc.cluster_name) : null;
    if (!adsClusterName) fail(at(actx, 'grpc_services[0].envoy_grpc.cluster_name'), 'cluster_name is required');
  }
  const viaAds = (src: Pb | undefined): boolean => Boolean(src && src.ads !== undefined);
  // The xDS client subscribes to listeners and clusters over ADS: the bootstrap must say so.
  for (const field of ['lds_config', 'cds_config'] as const) {
    const src = d[field] as Pb | undefined;
    adsConfigSource(src, at(ctx, field));
    if (!viaAds(src)) fail(at(ctx, field), `${field} must be { ads: {} } (sidemirror takes listeners and clusters over ADS)`);
  }
  if (!ads) fail(at(ctx, 'ads_config'), 'ads_config is required');
  return { adsClusterName, ldsViaAds: viaAds(d.lds_config as Pb | undefined), cdsViaAds: viaAds(d.cds_config as Pb | undefined) };
}

/** Envoy's default when layered_runtime is absent: an empty static layer below an admin layer. */
const DEFAULT_RUNTIME: readonly RuntimeLayerConfig[] = [
  { name: 'static_layer', kind: 'static', values: new Map() },
  { name: 'admin', kind: 'admin' },
];

/** `layered_runtime`: static layers flattened (nested keys joined with dots) and at most one admin layer. */
function decodeLayeredRuntime(lr: Pb | undefined, ctx: Ctx): readonly RuntimeLayerConfig[] {
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
    fail(lctx, 'one of static_layer or admin_layer is required');
    return null;
  });
  if (layers.length === 0) fail(at(ctx, 'layers'), 'at least one layer is required');
  return layers.filter((l): l is RuntimeLayerConfig => l !== null);
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
