import type { FilterChain } from '../config/model';
// Placeholder until the real matcher lands: the first chain, else the default.
export function selectFilterChain(chains: readonly FilterChain[], fallback: FilterChain | null,
  _conn: { serverName: string | null; transportProtocol: 'tls' | 'raw_buffer' | null; alpn: readonly string[] }): FilterChain | null {
  return chains[0] ?? fallback;
}
