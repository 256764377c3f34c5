import type { FilterChain } from '../config/model';

// Envoy's filter chain selection (listener.v3.FilterChainMatch), for the criteria sidemirror
// models. Each criterion in turn keeps only the chains that match it most specifically, and a
// later criterion never reaches back to chains an earlier one dropped:
//   1. server_names: chains naming the SNI exactly; else those with the longest matching
//      `*.suffix` (`www.example.com` tries `*.example.com`, then `*.com`); else those naming none;
//   2. transport_protocol: chains naming the connection's; else those naming none;
//   3. application_protocols: chains naming the first of the client's ALPN protocols that any
//      chain names; else those naming none.
// Nothing left: the listener's default chain (or none, and Envoy closes the connection).
// Destination port and address come first in Envoy; sidemirror's chains do not set them.

export interface ConnectionFacts {
  /** SNI from the ClientHello; null without one (or without tls_inspector). */
  readonly serverName: string | null;
  /** 'tls' when tls_inspector saw a ClientHello; null (or 'raw_buffer') otherwise. */
  readonly transportProtocol: 'tls' | 'raw_buffer' | null;
  /** The client's ALPN offer, in its order. */
  readonly alpn: readonly string[];
}

export function selectFilterChain(chains: readonly FilterChain[], fallback: FilterChain | null, conn: ConnectionFacts): FilterChain | null {
  let left = byServerName(chains, conn.serverName);
  left = byTransportProtocol(left, conn.transportProtocol ?? 'raw_buffer');
  left = byApplicationProtocol(left, conn.alpn);
  // Envoy refuses listeners with two chains of the same match; if the config still has them,
  // the first in config order wins.
  return left[0] ?? fallback;
}

function byServerName(chains: readonly FilterChain[], sni: string | null): readonly FilterChain[] {
  if (sni !== null && sni !== '') {
    const name = sni.toLowerCase();
    const exact = chains.filter((c) => c.match.serverNames.some((n) => n.toLowerCase() === name));
    if (exact.length > 0) return exact;
    for (let dot = name.indexOf('.', 1); dot >= 0 && dot < name.length - 1; dot = name.indexOf('.', dot + 1)) {
      const wildcard = `*${name.slice(dot)}`;
      const hits = chains.filter((c) => c.match.serverNames.some((n) => n.toLowerCase() === wildcard));
      if (hits.length > 0) return hits;
    }
  }
  return chains.filter((c) => c.match.serverNames.length === 0);
}

function byTransportProtocol(chains: readonly FilterChain[], protocol: string): readonly FilterChain[] {
  const named = chains.filter((c) => c.match.transportProtocol === protocol);
  return named.length > 0 ? named : chains.filter((c) => !c.match.transportProtocol);
}

function byApplicationProtocol(chains: readonly FilterChain[], offered: readonly string[]): readonly FilterChain[] {
  for (const p of offered) {
    const named = chains.filter((c) => c.match.applicationProtocols.includes(p));
    if (named.length > 0) return named;
  }
  return chains.filter((c) => c.match.applicationProtocols.length === 0);
}
