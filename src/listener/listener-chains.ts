import type { Socket } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { TLSSocket } from 'node:tls';
import type { Listener } from '../config/model';
import type { DownstreamTlsContext } from '../config/transport-model';
import type { StreamInfo } from '../http/stream-info';
import type { ServerTlsContext } from '../tls/server-context';
import { inspectClientHello } from './client-hello';
import { selectFilterChain } from './filter-chain-match';
import { type CodecChain, Http1Codec } from './http1-codec';
import { Http2Codec } from './http2-codec';
import type { ChainSpec, ListenerSpec } from './listener-spec';
import { type PrefixVerdict, readPrefix, sniffHttp2Preface } from './read-prefix';

/** Builds a filter chain's TLS; a chain whose TLS config is unchanged keeps its context. */
export type ServerTlsFactory = (ctx: DownstreamTlsContext, listener: Listener) => ServerTlsContext;

/** Envoy's listener_filters_timeout default: a ClientHello that takes longer closes the connection. */
const LISTENER_FILTERS_TIMEOUT_MS = 15_000;
/** Envoy's tls_inspector reads at most this much ClientHello (its default and its maximum). */
const MAX_CLIENT_HELLO_BYTES = 16 * 1024;
/** How long a TLS handshake may take. */
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** Long enough for any client to send its first bytes; an idle connection is then HTTP/1's to time out. */
const PREFACE_TIMEOUT_MS = 15_000;

/** One filter chain at run time: its config, its connection manager, its TLS and its two codecs. */
class RunningChain {
  spec: ChainSpec;
  tls: ServerTlsContext | null;
  readonly http1: Http1Codec;
  #http2: Http2Codec | null = null;

  constructor(spec: ChainSpec, tls: ServerTlsContext | null) {
    this.spec = spec;
    this.tls = tls;
    this.http1 = new Http1Codec(() => this.#codecChain());
  }

  /** The HTTP/2 codec, made when the first HTTP/2 connection comes. */
  get http2(): Http2Codec {
    this.#http2 ??= new Http2Codec(() => this.#codecChain());
    return this.#http2;
  }

  update(spec: ChainSpec, makeTls: (c: ChainSpec) => ServerTlsContext | null): void {
    const sameTls = isDeepStrictEqual(this.spec.chain.tls, spec.chain.tls);
    if (!sameTls) {
      this.tls?.close();
      this.tls = makeTls(spec);
    }
    this.spec = spec;
    this.http1.applySettings();
    this.#http2?.applySettings();
  }

  drain(): void {
    this.http1.drain();
    this.#http2?.drain();
  }

  close(): void {
    this.http1.close();
    this.#http2?.close();
    this.tls?.close();
  }

  #codecChain(): CodecChain {
    return this.spec;
  }
}

/**
 * The connection stage of one listener: for each accepted socket, the tls_inspector's look at
 * the ClientHello when configured, the filter chain (Envoy's match rules), TLS termination when
 * the chain has a transport socket, and the codec (ALPN on TLS; AUTO on plaintext sniffs the
 * HTTP/2 preface), which turns the connection into streams for the chain's connection manager.
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
      if (!kept) return new RunningChain(c, tlsOf(c));
      kept.update(c, tlsOf);
      return kept;
    });
    for (const removed of this.#chains.slice(spec.chains.length)) retire(removed);
    this.#chains = next;
    if (spec.defaultChain) {
      if (this.#default) this.#default.update(spec.defaultChain, tlsOf);
      else this.#default = new RunningChain(spec.defaultChain, tlsOf(spec.defaultChain));
    } else {
      if (this.#default) retire(this.#default);
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
    const hcm = running.spec.chain.hcm;
    if (running.tls) {
      this.#terminateTls(socket, running, running.tls, listener.tlsInspector ? hello.alpn : null);
      return;
    }
    const plain = { protocol: 'HTTP/1.1', scheme: 'http', tls: null } as const;
    if (hcm.codecType === 'HTTP1') return running.http1.serve({ socket, info: plain });
    if (hcm.codecType === 'HTTP2') return running.http2.serve({ socket, info: { ...plain, protocol: 'HTTP/2' } });
    // A client that sends nothing is the connection idle_timeout's, as it is once a codec has it;
    // past our own wait (a longer idle_timeout) the HTTP/1.1 codec's timers take it over.
    const idleMs = hcm.commonHttpProtocolOptions.idleTimeoutMs;
    const idleFirst = idleMs > 0 && idleMs <= PREFACE_TIMEOUT_MS;
    const protocol = await readPrefix(socket, sniffHttp2Preface, { maxBytes: 24, timeoutMs: idleFirst ? idleMs : PREFACE_TIMEOUT_MS },
      (why) => (why === 'timeout' && idleFirst ? 'idle' : 'HTTP/1.1'));
    if (protocol === null) return;
    if (protocol === 'idle') {
      running.spec.connectionManager.stats.cxIdleTimeout.inc();
      socket.destroy();
      return;
    }
    if (protocol === 'HTTP/2') running.http2.serve({ socket, info: { ...plain, protocol } });
    else running.http1.serve({ socket, info: plain });
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
      // Later errors (a reset mid-stream) belong to the codec now; none may go unhandled.
      secure.on('error', () => undefined);
      running.spec.connectionManager.stats.cxSslTotal.inc();
      const alpn = typeof secure.alpnProtocol === 'string' ? secure.alpnProtocol : null;
      const codec = running.spec.chain.hcm.codecType;
      const info: StreamInfo = {
        protocol: codec === 'HTTP2' || (codec === 'AUTO' && alpn === 'h2') ? 'HTTP/2' : 'HTTP/1.1',
        scheme: 'https',
        tls: { serverName: typeof secure.servername === 'string' ? secure.servername : null, alpn, peerSubjectAltNames: peerSans(secure) },
      };
      if (info.protocol === 'HTTP/2') running.http2.serve({ socket: secure, info });
      else running.http1.serve({ socket: secure, info });
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

function peerSans(socket: TLSSocket): string {
  const cert = socket.getPeerCertificate();
  return cert && typeof cert.subjectaltname === 'string' ? cert.subjectaltname : '';
}

/** A chain no longer configured: its connections finish (drain), then its TLS goes. */
function retire(chain: RunningChain): void {
  chain.drain();
  chain.tls?.close();
}
