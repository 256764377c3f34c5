import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Host } from '../upstream/host';

/** Why an upstream connection could not be made, in Envoy's terms. */
export type ConnectFailure =
  /** connect_timeout passed (TLS handshake included). */
  | 'timeout'
  /** Refused, unreachable, reset before it was up. */
  | 'remote'
  /** The TCP connection came up but the TLS handshake failed (verification, protocol). */
  | 'tls'
  /** The cluster's TLS waits for an SDS secret: Envoy fails such a connection at once. */
  | 'tls_not_ready';

export type ConnectResult = { readonly ok: true; readonly socket: net.Socket } | { readonly ok: false; readonly failure: ConnectFailure };

/**
 * Opens one raw connection to `host`: plain TCP, or TLS with the host's transport socket
 * options (the cluster's UpstreamTlsContext: its SNI rule, verification and ALPN). The connection
 * counts as up once TLS is established, as Envoy raises Connected only then. Half-open is
 * allowed: the TCP proxy passes each side's end on by itself. Returns an abort for a caller that
 * no longer wants it (the downstream went away); `done` is then never called.
 */
export function connectUpstream(host: Host, timeoutMs: number, done: (result: ConnectResult) => void): () => void {
  const options = host.tls?.() ?? null;
  if (host.tls && options === null) {
    // Asynchronous, like every other outcome: the caller's state is set before it hears back.
    const pending = setImmediate(() => done({ ok: false, failure: 'tls_not_ready' }));
    return () => clearImmediate(pending);
  }
  const target = { host: host.address, port: host.port };
  const socket: net.Socket = options
    // Node's tls.connect takes allowHalfOpen (its typings leave it out).
    ? tls.connect({ ...options, ...target, allowHalfOpen: true } as tls.ConnectionOptions)
    : net.connect({ ...target, allowHalfOpen: true, noDelay: true });
  let settled = false;
  let tcpUp = false;
  const settle = (result: ConnectResult): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.off('error', onError);
    if (!result.ok) socket.destroy();
    done(result);
  };
  const onError = (): void => settle({ ok: false, failure: options && tcpUp ? 'tls' : 'remote' });
  const timer = timeoutMs > 0 ? setTimeout(() => settle({ ok: false, failure: 'timeout' }), timeoutMs) : undefined;
  socket.once('connect', () => (tcpUp = true));
  socket.once('error', onError);
  // A peer that closes without an error (a TLS server that hangs up on the ClientHello) failed too.
  socket.once('close', () => settle({ ok: false, failure: options && tcpUp ? 'tls' : 'remote' }));
  socket.once(options ? 'secureConnect' : 'connect', () => {
    if (options) socket.setNoDelay(true);
    settle({ ok: true, socket });
  });
  return () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.destroy();
  };
}
