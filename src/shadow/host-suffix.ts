/**
 * Where the port starts in a Host value, or -1: the last ':' unless a ']' follows it (an IPv6
 * literal with no port), as Envoy's HeaderUtility::getPortStart decides.
 */
export function portStart(host: string): number {
  const colon = host.lastIndexOf(':');
  if (colon < 0) return -1;
  return host.indexOf(']', colon) >= 0 ? -1 : colon;
}

/** Envoy's shadow Host: `-shadow` before the port when there is one, else at the end. */
export function shadowHost(host: string): string {
  const at = portStart(host);
  return at < 0 ? `${host}-shadow` : `${host.slice(0, at)}-shadow${host.slice(at)}`;
}
