import type { Bootstrap, DynamicResources } from '../model';
import { type Ctx, type Pb, at, durationMs, each, fail, socketAddress, withRuntimeRe2Limit } from './common';
import { decodeCluster } from './cluster';
import { decodeListener } from './listener';

export function decodeBootstrap(b: Pb, ctx: Ctx): Bootstrap {
  const node = (b.node ?? {}) as Pb;
  const sr = (b.static_resources ?? {}) as Pb;
  const runtime = staticRuntime(b.layered_runtime as Pb | undefined);
  // The runtime's regex program-size ceiling applies to the static resources' regexes.
  const srctx = at(withRuntimeRe2Limit(ctx, runtime), 'static_resources');
  const admin = b.admin as Pb | undefined;
  return {
    node: { id: String(node.id ?? ''), cluster: String(node.cluster ?? '') },
    admin: admin ? { address: socketAddress(admin.address as Pb | undefined, at(at(ctx, 'admin'), 'address')) } : null,
    listeners: each(srctx, sr, 'listeners', decodeListener),
    clusters: each(srctx, sr, 'clusters', decodeCluster),
    runtime,
    dynamicResources: b.dynamic_resources ? decodeDynamicResources(b.dynamic_resources as Pb, at(ctx, 'dynamic_resources')) : null,
  };
}

function decodeDynamicResources(d: Pb, ctx: Ctx): DynamicResources {
  const ads = d.ads_config as Pb | undefined;
  let adsClusterName: string | null = null;
  if (ads) {
    const actx = at(ctx, 'ads_config');
    if (ads.api_type && ads.api_type !== 'GRPC') fail(at(actx, 'api_type'), `api_type ${ads.api_type} is not supported; use GRPC`);
    const services = (ads.grpc_services as Pb[] | undefined) ?? [];
    const envoyGrpc = services[0]?.envoy_grpc as Pb | undefined;
    adsClusterName = envoyGrpc?.cluster_name ? String(envoyGrpc.cluster_name) : null;
    if (!adsClusterName) fail(at(actx, 'grpc_services[0].envoy_grpc.cluster_name'), 'cluster_name is required');
  }
  const viaAds = (src: Pb | undefined): boolean => Boolean(src && src.ads !== undefined);
  // Envoy waits for each subscription's first response at most its initial_fetch_timeout
  // (default 15 s; 0: without limit); serving starts when both CDS and LDS are in, so the longer wins.
  const fetchTimeouts = [d.cds_config, d.lds_config].map((src) => durationMs((src as Pb | undefined)?.initial_fetch_timeout as Pb | undefined, 15_000));
  return {
    adsClusterName,
    ldsViaAds: viaAds(d.lds_config as Pb | undefined),
    cdsViaAds: viaAds(d.cds_config as Pb | undefined),
    initialFetchTimeoutMs: fetchTimeouts.includes(0) ? Infinity : Math.max(...fetchTimeouts),
  };
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
    // google.protobuf.Value comes from protobufjs's bundled descriptor, whose field names are camelCase.
    const struct = (value.struct_value ?? value.structValue) as Pb | undefined;
    const scalar = value.number_value ?? value.numberValue ?? value.string_value ?? value.stringValue ?? value.bool_value ?? value.boolValue;
    if (struct) flatten(struct.fields ?? {}, key, out);
    else if (scalar !== undefined) out.set(key, String(scalar));
  }
}
