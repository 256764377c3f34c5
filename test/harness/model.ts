import type { FilterChain, HttpConnectionManager } from '../../src/config/model';

/** The connection manager of a chain that must be an HTTP one (a test's own config). */
export function hcmOf(chain: FilterChain | null | undefined): HttpConnectionManager {
  if (chain?.kind !== 'http') throw new Error(`expected an HTTP filter chain, got ${chain?.kind ?? 'none'}`);
  return chain.hcm;
}
