import type { Bootstrap, DynamicResources, OverloadManagerConfig } from '../model';
import { type Ctx, type Pb, at, atIndex, durationMs, each, fail, socketAddress, typeUrlName, unpackAny, withRuntimeRe2Limit } from './common';
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
    overloadManager: decodeOverloadManager(b.overload_manager as Pb | undefined, at(ctx, 'overload_manager')),
  };
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
    // google.protobuf.Value comes from protobufjs' bundled types, in camelCase.
    const value = v as Pb;
    // google.protobuf.Value comes from protobufjs's bundled descriptor, whose field names are camelCase.
    const struct = (value.struct_value ?? value.structValue) as Pb | undefined;
    const scalar = value.number_value ?? value.numberValue ?? value.string_value ?? value.stringValue ?? value.bool_value ?? value.boolValue;
    if (struct) flatten(struct.fields ?? {}, key, out);
    else if (scalar !== undefined) out.set(key, String(scalar));
  }
}
