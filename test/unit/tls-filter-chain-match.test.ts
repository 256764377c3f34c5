import type { FilterChain, HttpConnectionManager } from '../../src/config/model';
import type { FilterChainMatch } from '../../src/config/transport-model';
import { type ConnectionFacts, selectFilterChain } from '../../src/listener/filter-chain-match';

// Envoy's filter chain selection: server name (exact, longest wildcard, none), then transport
// protocol, then application protocol, each narrowing what the previous step kept.

function chain(name: string, m: Partial<FilterChainMatch> = {}): FilterChain {
  return {
    name,
    match: { serverNames: [], transportProtocol: null, applicationProtocols: [], ...m },
    tls: null,
    // Selection never looks at the connection manager.
    kind: 'http',
    hcm: {} as HttpConnectionManager,
  };
}

const conn = (serverName: string | null, transportProtocol: ConnectionFacts['transportProtocol'] = 'tls', alpn: string[] = []): ConnectionFacts => ({ serverName, transportProtocol, alpn });
const fallback = chain('default');
const pick = (chains: FilterChain[], c: ConnectionFacts, def: FilterChain | null = fallback) => selectFilterChain(chains, def, c)?.name ?? null;

describe('server_names', () => {
  const chains = [
    chain('any'),
    chain('wild-example', { serverNames: ['*.example.com'] }),
    chain('wild-com', { serverNames: ['*.com'] }),
    chain('www', { serverNames: ['www.example.com', 'alias.test'] }),
    chain('deep-wild', { serverNames: ['*.b.example.com'] }),
  ];

  test.each([
    ['www.example.com', 'www'],
    ['WWW.Example.COM', 'www'],
    ['alias.test', 'www'],
    ['api.example.com', 'wild-example'],
    ['a.b.example.com', 'deep-wild'],
    ['x.y.example.com', 'wild-example'],
    ['other.com', 'wild-com'],
    ['example.com', 'wild-com'],
    ['elsewhere.org', 'any'],
    [null, 'any'],
  ])('%s → %s', (sni, expected) => {
    expect(pick(chains, conn(sni))).toBe(expected);
  });

  test('no chain without server_names: an unnamed or unknown SNI takes the default chain', () => {
    const named = [chain('www', { serverNames: ['www.example.com'] })];
    expect(pick(named, conn('nope.test'))).toBe('default');
    expect(pick(named, conn(null))).toBe('default');
    expect(pick(named, conn(null), null)).toBeNull();
  });
});

describe('transport_protocol and application_protocols', () => {
  test.each<[string, ConnectionFacts, string]>([
    ['tls picks the tls chain', conn(null, 'tls'), 'tls'],
    ['raw_buffer picks the raw chain', conn(null, 'raw_buffer'), 'raw'],
    ['nothing detected is raw_buffer', conn(null, null), 'raw'],
  ])('%s', (_label, c, expected) => {
    expect(pick([chain('tls', { transportProtocol: 'tls' }), chain('raw', { transportProtocol: 'raw_buffer' })], c)).toBe(expected);
  });

  test('a chain naming no transport protocol takes what no chain names', () => {
    const chains = [chain('tls', { transportProtocol: 'tls' }), chain('any')];
    expect(pick(chains, conn(null, 'raw_buffer'))).toBe('any');
    expect(pick(chains, conn(null, 'tls'))).toBe('tls');
  });

  test("ALPN: the client's first protocol that a chain names wins; else chains naming none", () => {
    const chains = [chain('h2', { applicationProtocols: ['h2'] }), chain('h1', { applicationProtocols: ['http/1.1'] }), chain('any')];
    expect(pick(chains, conn(null, 'tls', ['h2', 'http/1.1']))).toBe('h2');
    expect(pick(chains, conn(null, 'tls', ['http/1.1', 'h2']))).toBe('h1');
    expect(pick(chains, conn(null, 'tls', ['istio', 'h2']))).toBe('h2');
    expect(pick(chains, conn(null, 'tls', ['istio']))).toBe('any');
    expect(pick(chains, conn(null, 'tls', []))).toBe('any');
  });
});

describe('each step narrows; no step reaches back', () => {
  test('the exact server name wins even though its transport protocol then fails: default chain', () => {
    const chains = [chain('named-raw', { serverNames: ['a.test'], transportProtocol: 'raw_buffer' }), chain('any-tls', { transportProtocol: 'tls' })];
    expect(pick(chains, conn('a.test', 'tls'))).toBe('default');
    expect(pick(chains, conn('b.test', 'tls'))).toBe('any-tls');
  });

  test('a wildcard match that then fails on ALPN does not fall back to chains without names', () => {
    const chains = [chain('wild-h2', { serverNames: ['*.example.com'], applicationProtocols: ['h2'] }), chain('any')];
    expect(pick(chains, conn('a.example.com', 'tls', ['http/1.1']))).toBe('default');
    expect(pick(chains, conn('a.example.com', 'tls', ['h2']))).toBe('wild-h2');
  });

  test('Istio-style inbound: mTLS chain by ALPN istio, plaintext chain by raw_buffer', () => {
    const chains = [
      chain('mtls', { transportProtocol: 'tls', applicationProtocols: ['istio-peer-exchange', 'istio'] }),
      chain('tls-passthrough', { transportProtocol: 'tls' }),
      chain('plaintext', { transportProtocol: 'raw_buffer' }),
    ];
    expect(pick(chains, conn('outbound_.8080_._.svc', 'tls', ['istio', 'h2']))).toBe('mtls');
    expect(pick(chains, conn(null, 'tls', ['h2']))).toBe('tls-passthrough');
    expect(pick(chains, conn(null, 'raw_buffer'))).toBe('plaintext');
  });

  test('duplicate matches: the first in config order', () => {
    expect(pick([chain('one'), chain('two')], conn(null))).toBe('one');
  });
});
