import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { isDeepStrictEqual } from 'node:util';
import type { StreamInfo } from '../http/stream-info';
import type { ServerTlsContext } from '../tls/server-context';
import type { CodecChain, Http1Codec } from './http1-codec';
import { createHttp1Codec } from './http1-codec-choice';
import { Http2Codec } from './http2-codec';
import type { ChainSpec, HttpChainSpec, TcpChainSpec } from './listener-spec';
import { readPrefix, sniffHttp2Preface } from './read-prefix';

/** Long enough for any client to send its first bytes; an idle connection is then HTTP/1's to time out. */
const PREFACE_TIMEOUT_MS = 15_000;

/**
 * One filter chain at run time: its config, its TLS, and what serves its connections (the
 * codecs of its connection manager, or its TCP proxy). The listener picks the chain and
 * terminates TLS when the chain has a transport socket; the chain takes it from there.
 */
export type RunningChain = HttpRunningChain | TcpRunningChain;

/** Builds a chain's TLS (null when it has no transport socket). */
export type ChainTls = (spec: ChainSpec) => ServerTlsContext | null;

export function startChain(spec: ChainSpec, tls: ChainTls): RunningChain {
  return 'tcpProxy' in spec ? new TcpRunningChain(spec, tls(spec)) : new HttpRunningChain(spec, tls(spec));
}

/**
 * The chain at the same position after an update: the same object when it keeps its kind (its
 * connections carry on, its TLS context too when the TLS config is unchanged), else a new one,
 * the old one retired.
 */
export function updateChain(running: RunningChain, spec: ChainSpec, tls: ChainTls): RunningChain {
  if (running instanceof TcpRunningChain && 'tcpProxy' in spec) {
    running.update(spec, tls);
    return running;
  }
  if (running instanceof HttpRunningChain && 'connectionManager' in spec) {
    running.update(spec, tls);
    return running;
  }
  retireChain(running);
  return startChain(spec, tls);
}

/** A chain no longer configured: its connections finish (drain), then its TLS goes. */
export function retireChain(chain: RunningChain): void {
  chain.drain();
  chain.tls?.close();
}

abstract class ChainBase<S extends ChainSpec> {
  constructor(public spec: S, public tls: ServerTlsContext | null) {}

  protected swap(spec: S, makeTls: ChainTls): void {
    if (!isDeepStrictEqual(this.spec.chain.tls, spec.chain.tls)) {
      this.tls?.close();
      this.tls = makeTls(spec);
    }
    this.spec = spec;
  }
}

/** A chain ending in the HTTP connection manager: the HTTP/1.1 codec, and HTTP/2 when used. */
export class HttpRunningChain extends ChainBase<HttpChainSpec> {
  readonly http1: Http1Codec;
  #http2: Http2Codec | null = null;

  constructor(spec: HttpChainSpec, tls: ServerTlsContext | null) {
    super(spec, tls);
    this.http1 = createHttp1Codec(() => this.#codecChain());
  }

  /** The HTTP/2 codec, made when the first HTTP/2 connection comes. */
  get http2(): Http2Codec {
    this.#http2 ??= new Http2Codec(() => this.#codecChain());
    return this.#http2;
  }

  update(spec: HttpChainSpec, makeTls: ChainTls): void {
    this.swap(spec, makeTls);
    this.http1.applySettings();
    this.#http2?.applySettings();
  }

  /** A plaintext connection: the codec the HCM names, or (AUTO) HTTP/2 when it opens with the preface. */
  async servePlain(socket: Socket): Promise<void> {
    const hcm = this.spec.chain.hcm;
    const plain = { protocol: 'HTTP/1.1', scheme: 'http', tls: null } as const;
    if (hcm.codecType === 'HTTP1') return this.http1.serve({ socket, info: plain });
    if (hcm.codecType === 'HTTP2') return this.http2.serve({ socket, info: { ...plain, protocol: 'HTTP/2' } });
    // A client that sends nothing is the connection idle_timeout's, as it is once a codec has it;
    // past our own wait (a longer idle_timeout) the HTTP/1.1 codec's timers take it over.
    const idleMs = hcm.commonHttpProtocolOptions.idleTimeoutMs;
    const idleFirst = idleMs > 0 && idleMs <= PREFACE_TIMEOUT_MS;
    const protocol = await readPrefix(socket, sniffHttp2Preface, { maxBytes: 24, timeoutMs: idleFirst ? idleMs : PREFACE_TIMEOUT_MS },
      (why) => (why === 'timeout' && idleFirst ? 'idle' : 'HTTP/1.1'));
    if (protocol === null) return;
    if (protocol === 'idle') {
      this.spec.connectionManager.stats.cxIdleTimeout.inc();
      socket.destroy();
      return;
    }
    if (protocol === 'HTTP/2') this.http2.serve({ socket, info: { ...plain, protocol } });
    else this.http1.serve({ socket, info: plain });
  }

  /** A connection whose TLS the listener terminated: HTTP/2 when the codec says so or ALPN chose h2. */
  serveSecure(secure: TLSSocket): void {
    this.spec.connectionManager.stats.cxSslTotal.inc();
    const alpn = typeof secure.alpnProtocol === 'string' ? secure.alpnProtocol : null;
    const codec = this.spec.chain.hcm.codecType;
    const info: StreamInfo = {
      protocol: codec === 'HTTP2' || (codec === 'AUTO' && alpn === 'h2') ? 'HTTP/2' : 'HTTP/1.1',
      scheme: 'https',
      tls: { serverName: typeof secure.servername === 'string' ? secure.servername : null, alpn, peerSubjectAltNames: peerSans(secure) },
    };
    if (info.protocol === 'HTTP/2') this.http2.serve({ socket: secure, info });
    else this.http1.serve({ socket: secure, info });
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
 * A chain ending in the TCP proxy. Without a transport socket the bytes go upstream exactly as
 * they came (a TLS client's ClientHello included: passthrough); with one, the decrypted bytes.
 * Its connections are not drained: like Envoy's, they last until the listener's drain time ends.
 */
export class TcpRunningChain extends ChainBase<TcpChainSpec> {
  update(spec: TcpChainSpec, makeTls: ChainTls): void {
    this.swap(spec, makeTls);
  }

  servePlain(socket: Socket): void {
    this.spec.tcpProxy.serve(socket);
  }

  serveSecure(secure: TLSSocket): void {
    this.spec.tcpProxy.serve(secure);
  }

  drain(): void {}

  close(): void {
    this.tls?.close();
  }
}

function peerSans(socket: TLSSocket): string {
  const cert = socket.getPeerCertificate();
  return cert && typeof cert.subjectaltname === 'string' ? cert.subjectaltname : '';
}
