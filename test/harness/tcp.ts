// Raw TCP peers for the TCP proxy's tests: servers on 127.0.0.1 that echo, greet with their
// name, sink or stream bytes, and a client that reads what comes back until the proxy closes.

import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { type TestProxy, fetchText } from './proxy';
import { sleep } from './upstream';

type Json = Record<string, unknown>;

export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** A network filter entry for a TcpProxy with these fields. */
export function tcpProxyFilter(fields: Json): Json {
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY_TYPE, ...fields } };
}

/** A listener on 127.0.0.1:`port` (one listener per config may take 0: any free port) with one chain: the TCP proxy with `fields`. */
export function tcpListener(name: string, port: number, fields: Json, extra: Json = {}): Json {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{ filters: [tcpProxyFilter(fields)] }],
    ...extra,
  };
}

export interface TcpServer {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Sockets still open. */
  readonly open: number;
  close(): Promise<void>;
}

/**
 * A server whose every connection is handed to `onSocket`; plain TCP, or TLS with `tlsOptions`.
 * close() destroys what is still open.
 */
export async function startTcpServer(onSocket: (s: net.Socket) => void, tlsOptions?: tls.TlsOptions): Promise<TcpServer> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const handle = (s: net.Socket): void => {
    accepted++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    onSocket(s);
  };
  const server = tlsOptions ? tls.createServer({ ...tlsOptions, allowHalfOpen: true }, handle) : net.createServer({ allowHalfOpen: true }, handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    get accepted() { return accepted; },
    get open() { return sockets.size; },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Echoes every byte; ends its side when the client ends its own (a half-close is honoured). */
export const echo = (s: net.Socket): void => {
  s.pipe(s);
};

/** Writes `name\n` as soon as a client connects, then echoes. */
export const greeter = (name: string) => (s: net.Socket): void => {
  s.write(`${name}\n`);
  s.pipe(s);
};

export interface Exchange {
  /** Everything the client received before the connection closed. */
  readonly received: Buffer;
  /** The proxy ended its side cleanly (a FIN), rather than resetting it. */
  readonly ended: boolean;
}

/**
 * Connects to the proxy, sends `payload` (then ends its side when `end`), and collects what
 * comes back until the connection closes. Fails after `timeoutMs`.
 */
export function exchange(port: number, payload: string | Buffer, o: { end?: boolean; timeoutMs?: number } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no close within ${o.timeoutMs ?? 5000} ms; got ${Buffer.concat(chunks).length} bytes`));
    }, o.timeoutMs ?? 5000);
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => {
      ended = true;
      c.end();
    });
    c.on('error', () => undefined);
    c.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(chunks), ended });
    });
    c.once('connect', () => {
      if (payload.length > 0) c.write(payload);
      if (o.end) c.end();
    });
  });
}

/** A client connection that reports each byte it receives; for tests that talk back and forth. */
export async function openClient(port: number): Promise<{ socket: net.Socket; received: () => string; closed: Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => undefined);
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  // The proxy's end is answered with ours, so that a close by the proxy closes the socket.
  socket.on('end', () => socket.end());
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => reject(new Error('closed before it connected')));
  });
  return { socket, received: () => text, closed };
}

/** Every counter and gauge of the admin's /stats, by name. */
export async function allStats(adminUrl: string): Promise<Map<string, number>> {
  const { body } = await fetchText(`${adminUrl}/stats`);
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    const i = line.lastIndexOf(': ');
    if (i > 0) out.set(line.slice(0, i), Number(line.slice(i + 2)));
  }
  return out;
}

/** The bound port of one of the proxy's listeners, by name. */
export function portOf(p: TestProxy, name: string): number {
  const found = p.proxy.listeners.listeners().find((l) => l.name === name);
  if (!found) throw new Error(`no listener ${name}`);
  return found.address.port;
}

/** Pseudo-random bytes (fixed), so that a reordering or a lost chunk changes a hash. */
export function pattern(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

/** A stat's value once it stopped moving for 300 ms (bounded: 10 s). */
export async function settledStat(p: TestProxy, name: string): Promise<number> {
  let last = -1;
  for (let i = 0; i < 33; i++) {
    const now = (await allStats(p.adminUrl)).get(name) ?? 0;
    if (now === last) return now;
    last = now;
    await sleep(300);
  }
  throw new Error(`${name} still moving after 10 s`);
}
