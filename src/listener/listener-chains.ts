import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Listener } from '../config/model';
import type { DownstreamTlsContext } from '../config/transport-model';
import type { ServerTlsContext } from '../tls/server-context';
import { inspectClientHello } from './client-hello';
import { selectFilterChain } from './filter-chain-match';
import type { ChainSpec, ListenerSpec } from './listener-spec';
import { type PrefixVerdict, readPrefix } from './read-prefix';
import { type RunningChain, retireChain, startChain, updateChain } from './running-chain';

/** Builds a filter chain's TLS; a chain whose TLS config is unchanged keeps its context. */
export type ServerTlsFactory = (ctx: DownstreamTlsContext, listener: Listener) => ServerTlsContext;

/** Envoy's listener_filters_timeout default: a ClientHello that takes longer closes the connection. */
const LISTENER_FILTERS_TIMEOUT_MS = 15_000;
/** Envoy's tls_inspector reads at most this much ClientHello (its default and its maximum). */
const MAX_CLIENT_HELLO_BYTES = 16 * 1024;
/** How long a TLS handshake may take. */
const HANDSHAKE_TIMEOUT_MS = 15_000;

/**
 * The connection stage of one listener: for each accepted socket, the tls_inspector's look at
 * the ClientHello when configured, the filter chain (Envoy's match rules), TLS termination when
 * the chain has a transport socket, and then the chain itself (running-chain.ts): the codec of
 * its connection manager (ALPN on TLS; AUTO on plaintext sniffs the HTTP/2 preface), or its TCP
 * proxy.
 */
export class ListenerChains {
  #chains: RunningChain[] = [];
  #default: RunningChain | null = null;
  #spec: ListenerSpec;

  constructor(spec: ListenerSpec, private readonly tlsFactory: ServerTlsFactory, private readonly onNoMatch: (socket: Socket) => void = () => undefined) {
    this.#spec = spec;
    this.update(spec);
  }

  /** Chains are kept by position: a kept chain takes its new config, new ones start, removed ones drain. */
  update(spec: ListenerSpec): void {
    this.#spec = spec;
    const tlsOf = (c: ChainSpec): ServerTlsContext | null => (c.chain.tls ? this.tlsFactory(c.chain.tls, spec.listener) : null);
    const next = spec.chains.map((c, i) => {
      const kept = this.#chains[i];
      return kept ? updateChain(kept, c, tlsOf) : startChain(c, tlsOf);
    });
    for (const removed of this.#chains.slice(spec.chains.length)) retireChain(removed);
    this.#chains = next;
    if (spec.defaultChain) {
      this.#default = this.#default ? updateChain(this.#default, spec.defaultChain, tlsOf) : startChain(spec.defaultChain, tlsOf);
    } else {
      if (this.#default) retireChain(this.#default);
      this.#default = null;
    }
  }

  accept(socket: Socket): void {
    void this.#accept(socket).catch(() => socket.destroy());
  }

  async #accept(socket: Socket): Promise<void> {
    const listener = this.#spec.listener;
    let hello: ClientHelloSeen = NOTHING_SEEN;
    if (listener.tlsInspector) {
      const seen = await readPrefix(socket, helloVerdict, { maxBytes: MAX_CLIENT_HELLO_BYTES, timeoutMs: LISTENER_FILTERS_TIMEOUT_MS }, () => TIMED_OUT);
      if (seen === null || seen === TIMED_OUT) return void socket.destroy();
      hello = seen;
    }
    const running = this.#select(hello);
    if (!running) {
      // Envoy closes a connection no filter chain matches.
      this.onNoMatch(socket);
      socket.destroy();
      return;
    }
    if (running.tls) {
      this.#terminateTls(socket, running, running.tls, listener.tlsInspector ? hello.alpn : null);
      return;
    }
    await running.servePlain(socket);
  }

  #select(hello: ClientHelloSeen): RunningChain | null {
    const chains = this.#chains;
    const chosen = selectFilterChain(chains.map((c) => c.spec.chain), this.#default?.spec.chain ?? null, hello);
    if (chosen === null) return null;
    if (chosen === this.#default?.spec.chain) return this.#default;
    return chains.find((c) => c.spec.chain === chosen) ?? null;
  }

  #terminateTls(socket: Socket, running: RunningChain, serverTls: ServerTlsContext, offeredAlpn: readonly string[] | null): void {
    // A handshake that never completes must not hold the connection (Node's tls.Server has 120 s).
    const handshake = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
    handshake.unref();
    socket.once('close', () => clearTimeout(handshake));
    serverTls.accept(socket, (secure) => {
      clearTimeout(handshake);
      // Node's tls.Server marks its sockets connected once secure; a TLSSocket made on its own
      // stays "secureConnecting", and an HTTP/2 session would wait for it forever.
      (secure as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      // Later errors (a reset mid-stream) belong to the codec or proxy now; none may go unhandled.
      secure.on('error', () => undefined);
      running.serveSecure(secure);
    }, offeredAlpn);
  }

  drain(): void {
    for (const c of this.#chains) c.drain();
    this.#default?.drain();
  }

  close(): void {
    for (const c of this.#chains) c.close();
    this.#default?.close();
  }
}

interface ClientHelloSeen {
  readonly serverName: string | null;
  readonly transportProtocol: 'tls' | 'raw_buffer' | null;
  readonly alpn: readonly string[];
}

const NOTHING_SEEN: ClientHelloSeen = { serverName: null, transportProtocol: null, alpn: [] };
const TIMED_OUT: ClientHelloSeen = { serverName: null, transportProtocol: null, alpn: [] };
const RAW_BUFFER: ClientHelloSeen = { serverName: null, transportProtocol: 'raw_buffer', alpn: [] };

function helloVerdict(seen: Buffer): PrefixVerdict<ClientHelloSeen> {
  const hello = inspectClientHello(seen);
  if (hello.kind === 'need_more') return { done: false };
  if (hello.kind === 'not_tls') return { done: true, value: RAW_BUFFER };
  // Envoy closes a connection whose ClientHello does not fit the inspector's buffer.
  if (hello.kind === 'too_large') return { done: true, value: TIMED_OUT };
  return { done: true, value: { serverName: hello.serverName, transportProtocol: 'tls', alpn: hello.alpn } };
}
