import * as net from 'node:net';
import * as tls from 'node:tls';
import { connectTimeoutError } from '../h2-errors';
import type { TlsProvider } from '../pool-factory';

// Opening one upstream connection: TCP, or TLS with the rules of pool-factory's tlsConnector
// (options read from the provider at each connect, SNI only from the configured servername,
// ERR_TLS_CONTEXT_NOT_READY while the provider has none), socket options as undici sets them
// (no Nagle, TCP keep-alive after 60 s), and one timer over connect and handshake together.

export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsProvider | null;
  /** 0: no limit. */
  readonly connectTimeoutMs: number;
}

/** Calls `done` once: with the connected socket, or with why there is none. Returns the socket while it connects (null: failed at once). */
export function openSocket(target: ConnectTarget, done: (err: Error | null, socket: net.Socket | null) => void): net.Socket | null {
  let socket: net.Socket;
  try {
    socket = target.tls === null ? plainSocket(target) : tlsSocket(target, target.tls);
  } catch (err) {
    // tls.connect throws at once on options it cannot use (a PEM it cannot parse); the context
    // that is not ready yet is reported the same way, on the next turn like any connect failure.
    queueMicrotask(() => done(err as Error, null));
    return null;
  }
  let timer: NodeJS.Timeout | null = null;
  const onError = (err: Error): void => {
    if (timer !== null) clearTimeout(timer);
    socket.destroy();
    done(err, null);
  };
  socket.once('error', onError);
  socket.once(target.tls === null ? 'connect' : 'secureConnect', () => {
    if (timer !== null) clearTimeout(timer);
    socket.off('error', onError);
    done(null, socket);
  });
  if (target.connectTimeoutMs > 0) {
    timer = setTimeout(() => socket.destroy(connectTimeoutError(target.connectTimeoutMs)), target.connectTimeoutMs);
  }
  return socket;
}

// Node's socket options take a stream highWaterMark (undici's sizes: 64 KiB for TCP, 16 KiB for
// TLS, whose records are no bigger); @types/node leaves it out.
type WithHighWaterMark<T> = T & { highWaterMark: number };

function plainSocket(t: ConnectTarget): net.Socket {
  const options: WithHighWaterMark<net.NetConnectOpts> = { host: t.host, port: t.port, highWaterMark: 64 * 1024, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 };
  return net.connect(options);
}

function tlsSocket(t: ConnectTarget, provider: TlsProvider): tls.TLSSocket {
  const current = provider();
  if (current === null) throw new TlsContextNotReadyError();
  const options: WithHighWaterMark<tls.ConnectionOptions> = {
    highWaterMark: 16 * 1024,
    ...current,
    // Never the request's Host (a mirror's `-shadow` host would be a name of its own): the configured SNI, or none.
    servername: current.servername || (net.isIP(t.host) !== 0 ? undefined : t.host),
    ALPNProtocols: ['http/1.1'],
    host: t.host,
    port: t.port,
  };
  const socket = tls.connect(options);
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 60_000);
  return socket;
}

/** The code tlsConnector gives a TLS connect with no context to use yet (an SDS secret still missing). */
class TlsContextNotReadyError extends Error {
  readonly code = 'ERR_TLS_CONTEXT_NOT_READY';
  constructor() {
    super('upstream TLS context not ready (SDS secret missing)');
  }
}
