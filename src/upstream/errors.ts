/** How an upstream exchange failed, as the proxy counts and answers it. */
export type UpstreamFailure = 'connect_failure' | 'reset' | 'protocol_error';

const CONNECT_FAILURES = new Set([
  'ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND',
  // The HTTP/2 pool's other connect failures (TLS handshake, ALPN, a peer gone before its SETTINGS).
  'SM_UPSTREAM_CONNECT_FAILED',
]);

/** Sorts an undici or socket error: never connected, reset after, or a malformed response. */
export function classifyUpstreamError(err: Error): UpstreamFailure {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CONNECT_FAILURES.has(code)) return 'connect_failure';
  // undici's parser error has no code when llhttp gives none (a reply not starting with HTTP/).
  if (code.startsWith('HPE_') || code === 'UND_ERR_INFO' || err.name === 'HTTPParserError' || code === 'SM_UPSTREAM_PROTOCOL_ERROR') return 'protocol_error';
  return 'reset';
}
