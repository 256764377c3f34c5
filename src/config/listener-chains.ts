import type { FilterChain, HttpConnectionManager, HttpFilterChain, Listener, TcpProxyFilterChain } from './model';

/** Every filter chain of a listener, the default one last. */
export function listenerChains(l: Listener): readonly FilterChain[] {
  return l.defaultFilterChain ? [...l.filterChains, l.defaultFilterChain] : l.filterChains;
}

/** The connection managers of a listener, one per HTTP filter chain. */
export function listenerHcms(l: Listener): HttpConnectionManager[] {
  return listenerChains(l).flatMap((c) => (c.kind === 'http' ? [c.hcm] : []));
}

/** The RDS route configurations a listener's chains use. */
export function listenerRdsNames(l: Listener): string[] {
  return listenerHcms(l).flatMap((h) => (h.rdsRouteConfigName === null ? [] : [h.rdsRouteConfigName]));
}

/** Each HTTP chain with where its connection manager sits, relative to the listener (for issue paths). */
export function chainsWithHcmPath(l: Listener): Array<{ readonly chain: HttpFilterChain; readonly hcmPath: string }> {
  const out: Array<{ readonly chain: HttpFilterChain; readonly hcmPath: string }> = [];
  l.filterChains.forEach((chain, i) => {
    if (chain.kind === 'http') out.push({ chain, hcmPath: `filter_chains[${i}].filters[0].typed_config` });
  });
  if (l.defaultFilterChain?.kind === 'http') out.push({ chain: l.defaultFilterChain, hcmPath: 'default_filter_chain.filters[0].typed_config' });
  return out;
}

/** Each TCP proxy chain with where its TcpProxy sits, relative to the listener (for issue paths). */
export function chainsWithTcpProxyPath(l: Listener): Array<{ readonly chain: TcpProxyFilterChain; readonly tcpPath: string }> {
  const out: Array<{ readonly chain: TcpProxyFilterChain; readonly tcpPath: string }> = [];
  l.filterChains.forEach((chain, i) => {
    if (chain.kind === 'tcp_proxy') out.push({ chain, tcpPath: `filter_chains[${i}].filters[0].typed_config` });
  });
  if (l.defaultFilterChain?.kind === 'tcp_proxy') out.push({ chain: l.defaultFilterChain, tcpPath: 'default_filter_chain.filters[0].typed_config' });
  return out;
}
