import * as net from 'node:net';
import * as tls from 'node:tls';
import type { CommonTlsContext, DataSource, DownstreamTlsContext, SanMatcher, UpstreamTlsContext } from '../../src/config/transport-model';
import type { SslCounterName, SslCounters } from '../../src/tls/ssl-counters';
import type { ServerTlsContext } from '../../src/tls/server-context';

// Builders for the TLS model and real peers on 127.0.0.1 for the tls-* tests.

export const file = (path: string): DataSource => ({ kind: 'filename', path });

export function common(c: Partial<CommonTlsContext> = {}): CommonTlsContext {
  return {
    tlsParams: { minVersion: null, maxVersion: null, cipherSuites: [], ecdhCurves: [] },
    tlsCertificates: [],
    tlsCertificateSdsSecretConfigs: [],
    validationContext: null,
    validationContextSdsSecretConfig: null,
    alpnProtocols: [],
    ...c,
  };
}

export function cert(certFile: string, keyFile: string) {
  return { certificateChain: file(certFile), privateKey: file(keyFile), password: null };
}

export function validation(caFile: string | null, sans: readonly SanMatcher[] = [], allowExpired = false) {
  return { trustedCa: caFile ? file(caFile) : null, matchTypedSubjectAltNames: sans, allowExpiredCertificate: allowExpired };
}

export function downstream(c: Partial<CommonTlsContext>, requireClientCertificate = false): DownstreamTlsContext {
  return { common: common(c), requireClientCertificate };
}

export function upstream(c: Partial<CommonTlsContext>, sni: string | null = null): UpstreamTlsContext {
  return { common: common(c), sni };
}

/** Counts into a map, for assertions. */
export class CountingSsl implements SslCounters {
  readonly counts = new Map<string, number>();
  inc(name: SslCounterName): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }
  get(name: string): number {
    return this.counts.get(name) ?? 0;
  }
}

/** What a TLS server built from a ServerTlsContext saw of one connection. */
export interface ServerSide {
  readonly verdict: string;
  readonly alpn: string | false | null;
  readonly servername: string | false | null;
}

/**
 * A TCP server that runs each connection through the context the way a listener would: options
 * per connection, verifyPeer at 'secure', then writes `hello` and ends.
 */
export async function startTlsServer(ctx: ServerTlsContext, offeredAlpn?: readonly string[] | null): Promise<{ port: number; seen: ServerSide[]; close(): Promise<void> }> {
  const seen: ServerSide[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.once('close', () => sockets.delete(raw));
    const opts = ctx.socketOptions(offeredAlpn);
    if (!opts) {
      raw.destroy();
      return;
    }
    const s = new tls.TLSSocket(raw, { isServer: true, ...opts });
    s.on('error', (err) => ctx.handshakeFailed(err));
    s.once('secure', () => {
      const v = ctx.verifyPeer(s);
      seen.push({ verdict: v === 'ok' ? 'ok' : v.failure, alpn: s.alpnProtocol, servername: (s as unknown as { servername: string | false | null }).servername });
      if (v === 'ok') s.end('hello');
      else s.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface ClientOutcome {
  readonly ok: boolean;
  readonly data: string;
  readonly error: string | null;
  readonly peerSerial: string | null;
  readonly alpn: string | false | null;
  readonly protocol: string | null;
}

/** Connects with `options`, reads until the server closes; ok when `hello` arrived. */
export function runClient(options: tls.ConnectionOptions | (() => tls.TLSSocket), timeoutMs = 3000): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const s = typeof options === 'function' ? options() : tls.connect(options);
    let data = '';
    let error: string | null = null;
    let peerSerial: string | null = null;
    let alpn: string | false | null = null;
    let protocol: string | null = null;
    const timer = setTimeout(() => s.destroy(new Error('client timeout')), timeoutMs);
    s.on('secureConnect', () => {
      peerSerial = s.getPeerX509Certificate()?.serialNumber ?? null;
      alpn = s.alpnProtocol;
      protocol = s.getProtocol();
    });
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('error', (err: Error & { code?: string }) => (error ??= err.code ?? err.message));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ ok: data === 'hello', data, error, peerSerial, alpn, protocol });
    });
  });
}

/** A plain TLS server (Node's own) for the client-side tests; records each ClientHello's SNI. */
export async function startPlainTlsServer(options: tls.TlsOptions): Promise<{ port: number; snis: (string | false)[]; close(): Promise<void> }> {
  const snis: (string | false)[] = [];
  const server = tls.createServer(options, (s) => {
    snis.push((s as unknown as { servername: string | false }).servername);
    s.end('hello');
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    snis,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
