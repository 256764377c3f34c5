import type { DownstreamProtocolOptions, FilterChain, HttpConnectionManager, HttpFilter, InternalAddressConfig, Listener } from '../model';
import type { TcpProxyConfig } from '../tcp-proxy-model';
import type { FilterChainMatch } from '../transport-model';
import { http2Settings } from './http2';
import { type Ctx, type Pb, adsConfigSource, at, atIndex, cidrRange, durationMs, each, fail, refuse, socketAddress, typeUrlName, unpackAny, wrapped } from './common';
import { decodeAccessLogs } from './access-log';
import { type ChainForCheck, checkChainMatches, decodeFilterChainMatch, decodeListenerFilters } from './filter-chain-match';
import { downstreamTransportSocket } from './transport-socket';
import { upgradeType } from './upgrade';
import { MIRROR_FILTER_TYPE, checkRedisNames, decodeMirrorFilter } from './mirror-filter';
import { decodeRouteConfiguration } from './route';
import { filterKind } from '../../http/filters/registry';
import { TCP_PROXY_TYPE, decodeTcpProxy } from './tcp-proxy';

const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router';

const ESCAPED_SLASHES_ACTIONS = new Set(['KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD']);

export function decodeListener(l: Pb, ctx: Ctx): Listener {
  const address = socketAddress(l.address as Pb | undefined, at(ctx, 'address'));
  // Envoy names unnamed static listeners itself; ours are named after their address.
  const name = String(l.name ?? '') || `listener_${address.host}_${address.port}`;
  if (l.drain_type === 'MODIFY_ONLY') fail(at(ctx, 'drain_type'), 'MODIFY_ONLY is not supported by sidemirror');
  const chains = (l.filter_chains as Pb[] | undefined) ?? [];
  const checked = chains.map((c, i): ChainForCheck => {
    const cctx = atIndex(ctx, 'filter_chains', i);
    const match = decodeFilterChainMatch(c.filter_chain_match as Pb | undefined, at(cctx, 'filter_chain_match'));
    return { name: String(c.name ?? ''), written: c.filter_chain_match as Pb | undefined, match, ctx: cctx };
  });
  // A chain whose filters cannot be used still takes part: Envoy would refuse its match too.
  checkChainMatches(checked);
  const filterChains = chains
    .map((c, i) => decodeFilterChain(c, checked[i]!.ctx, checked[i]!.match))
    .filter((c): c is FilterChain => c !== null);
  const defaultFilterChain = l.default_filter_chain ? decodeFilterChain(l.default_filter_chain as Pb, at(ctx, 'default_filter_chain')) : null;
  if (chains.length === 0 && !l.default_filter_chain) fail(at(ctx, 'filter_chains'), 'a filter chain is required');
  const inspectors = decodeListenerFilters(l, ctx);
  return {
    name,
    address,
    filterChains,
    defaultFilterChain,
    tlsInspector: inspectors.tls,
    httpInspector: inspectors.http,
    perConnectionBufferLimitBytes: wrapped(l.per_connection_buffer_limit_bytes, 1024 * 1024),
    statPrefix: String(l.stat_prefix ?? '') || `${address.host}_${address.port}`,
    ignoreGlobalConnLimit: Boolean(l.ignore_global_conn_limit),
    trafficDirection: String(l.traffic_direction ?? 'UNSPECIFIED') as Listener['trafficDirection'],
    accessLog: decodeAccessLogs(l, ctx, 'listener'),
  };
}

function decodeFilterChain(chain: Pb, ctx: Ctx, known?: FilterChainMatch): FilterChain | null {
  const match = known ?? decodeFilterChainMatch(chain.filter_chain_match as Pb | undefined, at(ctx, 'filter_chain_match'));
  const tls = downstreamTransportSocket(chain.transport_socket as Pb | undefined, at(ctx, 'transport_socket'));
  const terminal = decodeChainFilters(chain, ctx);
  if (!terminal) return null;
  const base = { name: String(chain.name ?? ''), match, tls };
  return terminal.kind === 'http' ? { ...base, kind: 'http', hcm: terminal.hcm } : { ...base, kind: 'tcp_proxy', tcpProxy: terminal.tcpProxy };
}

type TerminalFilter = { readonly kind: 'http'; readonly hcm: HttpConnectionManager } | { readonly kind: 'tcp_proxy'; readonly tcpProxy: TcpProxyConfig };

/**
 * A chain's network filters: one terminal filter, the HTTP connection manager or the TCP proxy,
 * last. sidemirror has no other network filter, so any filter before it is refused by path.
 */
function decodeChainFilters(chain: Pb, ctx: Ctx): TerminalFilter | null {
  const filters = (chain.filters as Pb[] | undefined) ?? [];
  if (filters.length === 0) {
    fail(at(ctx, 'filters'), `a terminal network filter (${HCM_TYPE} or ${TCP_PROXY_TYPE}) is required`);
    return null;
  }
  let terminal: TerminalFilter | null = null;
  filters.forEach((f, i) => {
    const fctx = at(ctx, `filters[${i}]`);
    const cfg = unpackAny(f.typed_config as Pb | undefined, at(fctx, 'typed_config'));
    if (!cfg) {
      if (!f.typed_config) fail(at(fctx, 'typed_config'), 'typed_config is required');
      return;
    }
    const type = typeUrlName(cfg.typeUrl);
    if (type !== HCM_TYPE && type !== TCP_PROXY_TYPE) {
      fail(at(fctx, 'typed_config'), `network filter "${cfg.typeUrl}" is not supported by sidemirror; only ${HCM_TYPE} and ${TCP_PROXY_TYPE} are`);
      return;
    }
    if (i !== filters.length - 1) {
      fail(fctx, `${type} is a terminal filter: it must be the last filter of its chain`);
      return;
    }
    const tctx = at(fctx, 'typed_config');
    terminal = type === HCM_TYPE
      ? { kind: 'http', hcm: decodeHttpConnectionManager(cfg.value as Pb, tctx) }
      : { kind: 'tcp_proxy', tcpProxy: decodeTcpProxy(cfg.value as Pb, tctx) };
  });
  return terminal;
}

export function decodeHttpConnectionManager(h: Pb, ctx: Ctx, report = true): HttpConnectionManager {
  const statPrefix = String(h.stat_prefix ?? '');
  if (report && !statPrefix) fail(at(ctx, 'stat_prefix'), 'stat_prefix is required');
  const codecType = String(h.codec_type ?? 'AUTO') as HttpConnectionManager['codecType'];
  if (report && codecType === 'HTTP3') fail(at(ctx, 'codec_type'), 'HTTP3 is not supported by sidemirror (AUTO, HTTP1 and HTTP2 are)');

  let rdsRouteConfigName: string | null = null;
  if (h.rds) {
    rdsRouteConfigName = String((h.rds as Pb).route_config_name ?? '');
    if (report && !rdsRouteConfigName) fail(at(at(ctx, 'rds'), 'route_config_name'), 'route_config_name is required');
  }
  if (report && h.rds && h.route_config) fail(ctx, 'only one of rds, route_config may be set');
  if (report && !h.rds && !h.route_config) fail(ctx, 'one of rds or route_config is required');
  const routeConfig = h.route_config ? decodeRouteConfiguration(h.route_config as Pb, at(ctx, 'route_config')) : null;

  const httpFilters = each(ctx, h, 'http_filters', decodeHttpFilter);
  if (report) checkFilterOrder(httpFilters, ctx);
  const mirrorFilter = findMirrorFilter(httpFilters, ctx);
  if (report && routeConfig && mirrorFilter) checkRedisNames(routeConfig, mirrorFilter, ctx);
  if (report) {
    refuse(h, ctx, ['drain_timeout']);
    if (wrapped(h.add_user_agent, false)) fail(at(ctx, 'add_user_agent'), 'true is not supported by sidemirror');
    adsConfigSource((h.rds as Pb | undefined)?.config_source as Pb | undefined, at(at(ctx, 'rds'), 'config_source'));
  }
  const upgradeTypes = decodeUpgradeConfigs(h, ctx, report);
  return {
    statPrefix,
    codecType,
    routeConfig,
    rdsRouteConfigName,
    httpFilters,
    mirrorFilter,
    serverName: String(h.server_name ?? '') || 'envoy',
    serverHeaderTransformation: String(h.server_header_transformation ?? 'OVERWRITE') as HttpConnectionManager['serverHeaderTransformation'],
    useRemoteAddress: wrapped(h.use_remote_address, false),
    xffNumTrustedHops: Number(h.xff_num_trusted_hops ?? 0),
    internalAddressConfig: h.internal_address_config ? decodeInternalAddressConfig(h.internal_address_config as Pb, at(ctx, 'internal_address_config')) : null,
    skipXffAppend: Boolean(h.skip_xff_append),
    via: String(h.via ?? ''),
    generateRequestId: wrapped(h.generate_request_id, true),
    preserveExternalRequestId: Boolean(h.preserve_external_request_id),
    alwaysSetRequestIdInResponse: Boolean(h.always_set_request_id_in_response),
    streamIdleTimeoutMs: durationMs(h.stream_idle_timeout as Pb | undefined, 300_000),
    requestTimeoutMs: durationMs(h.request_timeout as Pb | undefined, 0),
    requestHeadersTimeoutMs: durationMs(h.request_headers_timeout as Pb | undefined, 0),
    upgradeTypes,
    http2: http2Settings(h.http2_protocol_options as Pb | undefined, at(ctx, 'http2_protocol_options')),
    accessLog: decodeAccessLogs(h, ctx, 'connection_manager'),
    http1: decodeHttp1Settings(h.http_protocol_options as Pb | undefined, at(ctx, 'http_protocol_options'), report),
    normalizePath: wrapped(h.normalize_path, false),
    mergeSlashes: Boolean(h.merge_slashes),
    pathWithEscapedSlashesAction: escapedSlashesAction(h, ctx, report),
    maxRequestHeadersKb: maxRequestHeadersKb(h.max_request_headers_kb as Pb | undefined, at(ctx, 'max_request_headers_kb')),
    commonHttpProtocolOptions: decodeDownstreamProtocolOptions(h.common_http_protocol_options as Pb | undefined, at(ctx, 'common_http_protocol_options')),
  };
}

/**
 * upgrade_configs: the upgrade types (lower case) this connection manager allows; a route's own
 * upgrade_configs can still turn one on or off. Custom upgrade filter chains are refused by name.
 */
function decodeUpgradeConfigs(h: Pb, ctx: Ctx, report: boolean): string[] {
  const seen = new Set<string>();
  const enabled: string[] = [];
  each(ctx, h, 'upgrade_configs', (u, uctx) => {
    const type = upgradeType(u, uctx, report);
    if (type === null) return;
    const lower = type.toLowerCase();
    if (seen.has(lower)) {
      if (report) fail(at(uctx, 'upgrade_type'), `multiple upgrade configs with the same name: '${type}'`);
      return;
    }
    seen.add(lower);
    if (wrapped(u.enabled, true)) enabled.push(lower);
  });
  return enabled;
}

/** Envoy's bounds: 1 to 8192 KiB, 60 by default. */
function maxRequestHeadersKb(w: Pb | undefined, ctx: Ctx): number {
  const kb = Number(wrapped(w, 60));
  if (!Number.isInteger(kb) || kb < 1 || kb > 8192) {
    fail(ctx, 'must be between 1 and 8192');
    return 60;
  }
  return kb;
}

/** common_http_protocol_options as Envoy applies them to downstream connections. */
function decodeDownstreamProtocolOptions(o: Pb | undefined, ctx: Ctx): DownstreamProtocolOptions {
  const p = o ?? {};
  if (p.max_stream_duration !== undefined) fail(at(ctx, 'max_stream_duration'), 'max_stream_duration is not supported by sidemirror');
  const maxHeadersCount = Number(wrapped(p.max_headers_count as Pb | undefined, 100));
  if (!Number.isInteger(maxHeadersCount) || maxHeadersCount < 1) fail(at(ctx, 'max_headers_count'), 'must be at least 1');
  return {
    idleTimeoutMs: durationMs(p.idle_timeout as Pb | undefined, 3_600_000),
    maxConnectionDurationMs: durationMs(p.max_connection_duration as Pb | undefined, 0),
    maxHeadersCount: Math.max(1, maxHeadersCount || 100),
    maxRequestsPerConnection: Number(wrapped(p.max_requests_per_connection as Pb | undefined, 0)),
  };
}

function decodeInternalAddressConfig(c: Pb, ctx: Ctx): InternalAddressConfig {
  if (c.unix_sockets) fail(at(ctx, 'unix_sockets'), 'not supported by sidemirror: listeners accept TCP connections only');
  return { cidrRanges: each(ctx, c, 'cidr_ranges', cidrRange) };
}

/** The downstream HTTP/1 codec options sidemirror applies (request-validation.ts); the rest are refused. */
function decodeHttp1Settings(o: Pb | undefined, ctx: Ctx, report: boolean): HttpConnectionManager['http1'] {
  if (report && o?.enable_trailers) fail(at(ctx, 'enable_trailers'), 'downstream trailers are not supported by sidemirror');
  return {
    allowAbsoluteUrl: wrapped(o?.allow_absolute_url, true),
    acceptHttp10: Boolean(o?.accept_http_10),
    defaultHostForHttp10: String(o?.default_host_for_http_10 ?? ''),
  };
}

function escapedSlashesAction(h: Pb, ctx: Ctx, report: boolean): HttpConnectionManager['pathWithEscapedSlashesAction'] {
  if (report && h.path_normalization_options) fail(at(ctx, 'path_normalization_options'), 'path_normalization_options is not supported by sidemirror; use normalize_path and merge_slashes');
  const action = String(h.path_with_escaped_slashes_action ?? 'IMPLEMENTATION_SPECIFIC_DEFAULT');
  // Envoy's implementation-specific default is KEEP_UNCHANGED.
  if (action === 'IMPLEMENTATION_SPECIFIC_DEFAULT') return 'KEEP_UNCHANGED';
  if (!ESCAPED_SLASHES_ACTIONS.has(action)) {
    if (report) fail(at(ctx, 'path_with_escaped_slashes_action'), `unknown value ${action}`);
    return 'KEEP_UNCHANGED';
  }
  return action as HttpConnectionManager['pathWithEscapedSlashesAction'];
}

function decodeHttpFilter(f: Pb, ctx: Ctx): HttpFilter {
  const name = String(f.name ?? '');
  if (!name) fail(at(ctx, 'name'), 'name is required');
  const isOptional = Boolean(f.is_optional);
  const disabled = Boolean(f.disabled);
  const tctx = at(ctx, 'typed_config');
  const config = unpackAny(f.typed_config as Pb | undefined, tctx, isOptional);
  if (!f.typed_config && name !== 'envoy.filters.http.router') fail(tctx, 'typed_config is required');
  if (!config) return { name, config, isOptional, disabled, settings: undefined };
  const type = typeUrlName(config.typeUrl);
  const kind = filterKind(type);
  if (kind) return { name, config, isOptional, disabled, settings: kind.decode(config.value as Pb, tctx) };
  if (type === ROUTER_TYPE) {
    const r = config.value as Pb;
    // The router always keeps per-cluster stats (dynamic_stats) and has no tracing or expected-timeout header.
    refuse(r, tctx, ['start_child_span', 'respect_expected_rq_timeout']);
    if (r.dynamic_stats !== undefined && !wrapped(r.dynamic_stats, true)) fail(at(tctx, 'dynamic_stats'), 'false is not supported by sidemirror');
    if (disabled) fail(at(ctx, 'disabled'), 'the router cannot be disabled');
  } else if (type === MIRROR_FILTER_TYPE) {
    if (disabled) fail(at(ctx, 'disabled'), 'not supported for the mirror filter: turn mirroring off per route with its own config');
  } else if (!isOptional) {
    fail(tctx, `HTTP filter "${config.typeUrl}" is not supported by sidemirror`);
  }
  // An optional filter sidemirror does not run is left out, as Envoy leaves out one it does not know.
  return { name, config: type === ROUTER_TYPE || type === MIRROR_FILTER_TYPE ? config : null, isOptional, disabled, settings: undefined };
}

/** The sidemirror mirror filter entry, decoded; at most one per connection manager. */
function findMirrorFilter(filters: readonly HttpFilter[], ctx: Ctx): HttpConnectionManager['mirrorFilter'] {
  let found: HttpConnectionManager['mirrorFilter'] = null;
  filters.forEach((f, i) => {
    if (!f.config || typeUrlName(f.config.typeUrl) !== MIRROR_FILTER_TYPE) return;
    const fctx = at(ctx, `http_filters[${i}].typed_config`);
    if (found) fail(fctx, 'only one sidemirror mirror filter per connection manager');
    found = { name: f.name, config: decodeMirrorFilter(f.config.value as Pb, fctx) };
  });
  return found;
}

function checkFilterOrder(filters: readonly HttpFilter[], ctx: Ctx): void {
  const isRouter = (f: HttpFilter): boolean =>
    f.config ? typeUrlName(f.config.typeUrl) === ROUTER_TYPE : f.name === 'envoy.filters.http.router';
  const last = filters[filters.length - 1];
  if (!last || !isRouter(last)) {
    fail(at(ctx, 'http_filters'), 'the router (envoy.filters.http.router) must be the last HTTP filter');
  }
  filters.slice(0, -1).forEach((f, i) => {
    if (isRouter(f)) fail(at(ctx, `http_filters[${i}]`), 'the router must be the last HTTP filter');
  });
}
