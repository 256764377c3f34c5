// Placeholder until the tls_inspector parser lands: everything is "not TLS".
export type ClientHelloInspection = { kind: 'need_more' } | { kind: 'not_tls' } | { kind: 'tls'; serverName: string | null; alpn: string[] };
export function inspectClientHello(buf: Buffer): ClientHelloInspection {
  return buf.length === 0 ? { kind: 'need_more' } : { kind: 'not_tls' };
}
