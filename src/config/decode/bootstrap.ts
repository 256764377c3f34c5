import type { Bootstrap, DynamicResources } from '../model';
import { type Ctx, type Pb, at, atIndex, each, fail, socketAddress } from './common';
import { decodeCluster } from './cluster';
import { decodeListener } from './listener';

export function decodeBootstrap(b: Pb, ctx: Ctx): Bootstrap {
  const node = (b.node ?? {}) as Pb;
  const sr = (b.static_resources ?? {}) as Pb;
  const srctx = at(ctx, 'static_resources');
  const admin = b.admin as Pb | undefined;
  return {
    node: { id: String(node.id ?? ''), cluster: String(node.cluster ?? '') },
    admin: admin ? { address: socketAddress(admin.address as Pb | undefined, at(at(ctx, 'admin'), 'address')) } : null,
    listeners: each(srctx, sr, 'listeners', decodeListener),
    clusters: each(srctx, sr, 'clusters', decodeCluster),
    runtime: staticRuntime(b.layered_runtime as Pb | undefined),
    dynamicResources: b.dynamic_resources ? decodeDynamicResources(b.dynamic_resources as Pb, at(ctx, 'dynamic_resources')) : null,
  };
}

function decodeDynamicResources(d: Pb, ctx: Ctx): DynamicResources {
  const ads = d.ads_config as Pb | undefined;
  let adsClusterName: string | null = null;
  let adsInitialMetadata: DynamicResources['adsInitialMetadata'] = [];
  let adsMaxReceiveMessageBytes: number | null = null;
  if (ads) {
    const actx = at(ctx, 'ads_config');
    if (ads.api_type && ads.api_type !== 'GRPC') fail(at(actx, 'api_type'), `api_type ${ads.api_type} is not supported; use GRPC`);
    const services = (ads.grpc_services as Pb[] | undefined) ?? [];
    const service = services[0] ?? {};
    const envoyGrpc = service.envoy_grpc as Pb | undefined;
    adsClusterName = envoyGrpc?.cluster_name ? String(envoyGrpc.cluster_name) : null;
    if (!adsClusterName) fail(at(actx, 'grpc_services[0].envoy_grpc.cluster_name'), 'cluster_name is required');
    const sctx = atIndex(actx, 'grpc_services', 0);
    adsInitialMetadata = each(sctx, service, 'initial_metadata', grpcMetadata);
    const max = envoyGrpc?.max_receive_message_length as Pb | undefined;
    if (max) adsMaxReceiveMessageBytes = Number(max.value ?? 0);
  }
  const viaAds = (src: Pb | undefined): boolean => Boolean(src && src.ads !== undefined);
  return {
    adsClusterName, adsInitialMetadata, adsMaxReceiveMessageBytes,
    ldsViaAds: viaAds(d.lds_config as Pb | undefined), cdsViaAds: viaAds(d.cds_config as Pb | undefined),
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

/** Flattens the static layers of `layered_runtime` (later layers win) into key → string value. */
function staticRuntime(lr: Pb | undefined): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const layer of (lr?.layers as Pb[] | undefined) ?? []) {
    const fields = (layer.static_layer as Pb | undefined)?.fields as Pb | undefined;
    if (fields) flatten(fields, '', out);
  }
  return out;
}

function flatten(fields: Pb, prefix: string, out: Map<string, string>): void {
  for (const [k, v] of Object.entries(fields)) {
    const key = prefix ? `${prefix}.${k}` : k;
    const value = v as Pb;
    if (value.struct_value) flatten((value.struct_value as Pb).fields ?? {}, key, out);
    else if (value.number_value !== undefined) out.set(key, String(value.number_value));
    else if (value.string_value !== undefined) out.set(key, String(value.string_value));
    else if (value.bool_value !== undefined) out.set(key, String(value.bool_value));
  }
}
