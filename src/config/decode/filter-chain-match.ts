import type { FilterChainMatch } from '../transport-model';
import { type Ctx, type Pb, at, atIndex, each, fail, typeUrlName, unpackAny } from './common';

// How a listener picks a filter chain: each chain's filter_chain_match (server_names,
// transport_protocol, application_protocols; the rest of Envoy's fields are refused by name),
// the checks Envoy's filter chain manager makes across chains, and the tls_inspector listener
// filter that tells SNI, ALPN and "tls" before a chain is chosen.
//
// Envoy no longer adds a tls_inspector by itself when chains match on TLS properties (that
// injection was turned off by default in 1.17 and removed later): without one listed, SNI and
// ALPN are unknown and the transport protocol is "raw_buffer", so such chains never match. The
// model says what the listener lists (Listener.tlsInspector), and sidemirror behaves the same.

export const TLS_INSPECTOR_NAME = 'envoy.filters.listener.tls_inspector';
const TLS_INSPECTOR_TYPE = 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

export const ANY_CHAIN: FilterChainMatch = { serverNames: [], transportProtocol: null, applicationProtocols: [] };

export function decodeFilterChainMatch(m: Pb | undefined, ctx: Ctx): FilterChainMatch {
  if (!m) return ANY_CHAIN;
  const serverNames = ((m.server_names as string[] | undefined) ?? []).map((raw, i) => {
    const name = String(raw);
    // Envoy matches exact names and `*.suffix` only.
    if (name.includes('*') && !(name.startsWith('*.') && !name.slice(1).includes('*'))) {
      fail(atIndex(ctx, 'server_names', i), 'partial wildcards are not supported in "server_names"');
    } else if (!name) fail(atIndex(ctx, 'server_names', i), 'a server name must not be empty');
    return name.toLowerCase();
  });
  const transportProtocol = m.transport_protocol ? String(m.transport_protocol) : null;
  const applicationProtocols = ((m.application_protocols as string[] | undefined) ?? []).map(String);
  return { serverNames, transportProtocol, applicationProtocols };
}

/** One chain as the cross-chain checks see it. */
export interface ChainForCheck {
  readonly name: string;
  /** The filter_chain_match as written, to compare as Envoy compares the messages. */
  readonly written: Pb | undefined;
  readonly match: FilterChainMatch;
  readonly ctx: Ctx;
}

/**
 * Envoy's errors: two chains whose filter_chain_match messages are equal, and chains that would
 * compete for the same (server name, transport protocol, ALPN) combination.
 */
export function checkChainMatches(chains: readonly ChainForCheck[]): void {
  const written = new Map<string, string>();
  const leaves = new Set<string>();
  for (const c of chains) {
    const mctx = at(c.ctx, 'filter_chain_match');
    const key = canonical(c.written ?? {});
    const twin = written.get(key);
    if (twin !== undefined) {
      fail(mctx, `filter chain '${c.name}' has the same matching rules defined as '${twin}'`);
      continue;
    }
    written.set(key, c.name);
    let overlaps = false;
    for (const leaf of matchLeaves(c.match)) {
      if (leaves.has(leaf)) overlaps = true;
      leaves.add(leaf);
    }
    if (overlaps) fail(mctx, 'multiple filter chains with overlapping matching rules are defined');
  }
}

/** Every (server name, transport protocol, ALPN) a chain claims; a wildcard `*.a.b` claims `.a.b`. */
function matchLeaves(m: FilterChainMatch): string[] {
  const names = m.serverNames.length > 0 ? m.serverNames.map((n) => (n.startsWith('*.') ? n.slice(1) : n)) : [''];
  const alpns = m.applicationProtocols.length > 0 ? m.applicationProtocols : [''];
  return names.flatMap((n) => alpns.map((a) => `${n}\0${m.transportProtocol ?? ''}\0${a}`));
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined && !(Array.isArray(x) && x.length === 0) && x !== '');
    return `{${entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

const HTTP_INSPECTOR_NAME = 'envoy.filters.listener.http_inspector';
const HTTP_INSPECTOR_TYPE = 'envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';

/** listener_filters: which inspectors are listed (tls_inspector, http_inspector); any other listener filter is refused. */
export function decodeListenerFilters(l: Pb, ctx: Ctx): { readonly tls: boolean; readonly http: boolean } {
  const found = each(ctx, l, 'listener_filters', (f, fctx): 'tls' | 'http' | null => {
    const name = String(f.name ?? '');
    const supported = `only ${TLS_INSPECTOR_TYPE} and ${HTTP_INSPECTOR_TYPE} are`;
    if (f.typed_config) {
      const cfg = unpackAny(f.typed_config as Pb, at(fctx, 'typed_config'));
      if (!cfg) return null;
      if (typeUrlName(cfg.typeUrl) === TLS_INSPECTOR_TYPE) return 'tls';
      if (typeUrlName(cfg.typeUrl) === HTTP_INSPECTOR_TYPE) return 'http';
      fail(at(fctx, 'typed_config'), `listener filter "${cfg.typeUrl}" is not supported by sidemirror (${supported})`);
      return null;
    }
    if (name === TLS_INSPECTOR_NAME) return 'tls';
    if (name === HTTP_INSPECTOR_NAME) return 'http';
    if (!name) fail(at(fctx, 'name'), 'name is required');
    else fail(at(fctx, 'name'), `listener filter "${name}" is not supported by sidemirror (only ${TLS_INSPECTOR_NAME} and ${HTTP_INSPECTOR_NAME} are)`);
    return null;
  });
  return { tls: found.includes('tls'), http: found.includes('http') };
}
