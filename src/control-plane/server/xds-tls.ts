import * as fs from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import * as tls from 'node:tls';
import { certificatesProblem, keyMatchesCertificate, privateKeyProblem } from '../../config/decode/data-source';
import type { Logger } from '../../log/logger';
import { FileWatcher } from '../../tls/file-watcher';

// xDS over TLS, optionally mutual: a node:tls server in front of the gRPC server, handing each
// connection that passed the handshake (and negotiated h2) to grpc-js. grpc-js's own secure
// server (ServerCredentials.createSsl) would do the same handshake, but it keeps its tls.Server to
// itself, so a refused client could be neither counted nor logged; and it cannot take a new
// certificate without a restart, which this one does when the files change.

/** The files of `--tls-cert`, `--tls-key` and `--client-ca`. */
export interface XdsTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** With it, every client must present a certificate this CA bundle verifies. */
  readonly clientCaFile?: string;
}

interface XdsTlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer | null;
}

/** Why a connection was refused, for the refusal counter. */
export type TlsRefusal = 'no_client_certificate' | 'bad_client_certificate' | 'no_h2_alpn' | 'handshake';

const HANDSHAKE_TIMEOUT_MS = 10_000;
/** At most one log line per reason in this window; the rest are counted in the next line. */
const LOG_WINDOW_MS = 10_000;

function readFlagFile(file: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Reads and checks the files; throws an Error of one line naming the flag and what is wrong. */
export function readXdsTls(files: XdsTlsFiles): XdsTlsMaterial {
  const cert = readFlagFile(files.certFile, '--tls-cert');
  const key = readFlagFile(files.keyFile, '--tls-key');
  const certProblem = certificatesProblem(cert.toString('utf8'));
  if (certProblem) throw new Error(`--tls-cert ${files.certFile}: ${certProblem}`);
  const keyProblem = privateKeyProblem(key.toString('utf8'), null);
  if (keyProblem) throw new Error(`--tls-key ${files.keyFile}: ${keyProblem}`);
  if (!keyMatchesCertificate(cert.toString('utf8'), key.toString('utf8'), null)) {
    throw new Error(`--tls-key ${files.keyFile} is not the key of the certificate in --tls-cert ${files.certFile}`);
  }
  let clientCa: Buffer | null = null;
  if (files.clientCaFile !== undefined) {
    clientCa = readFlagFile(files.clientCaFile, '--client-ca');
    const caProblem = certificatesProblem(clientCa.toString('utf8'));
    if (caProblem) throw new Error(`--client-ca ${files.clientCaFile}: ${caProblem}`);
  }
  return { cert, key, clientCa };
}

export interface XdsTlsFrontOptions {
  readonly files: XdsTlsFiles;
  readonly logger: Logger;
  /** A connection that passed the handshake and negotiated h2: hand it to the gRPC server. */
  readonly onSecure: (socket: tls.TLSSocket) => void;
  readonly onRefused: (reason: TlsRefusal) => void;
}

export class XdsTlsFront {
  readonly #server: tls.Server;
  readonly #files: XdsTlsFiles;
  readonly #logger: Logger;
  readonly #watcher = new FileWatcher();
  readonly #sockets = new Set<Socket>();
  readonly #logged = new Map<TlsRefusal, { at: number; suppressed: number }>();

  /** Throws (one line) when the files cannot be read or do not fit together. */
  constructor(private readonly o: XdsTlsFrontOptions) {
    this.#files = o.files;
    this.#logger = o.logger;
    const m = readXdsTls(o.files);
    const mutual = m.clientCa !== null;
    this.#server = tls.createServer({
      ...contextOptions(m),
      // A client certificate is asked for, and required, only with --client-ca.
      requestCert: mutual,
      rejectUnauthorized: mutual,
      ALPNProtocols: ['h2'],
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    this.#server.on('connection', (raw: Socket) => {
      this.#sockets.add(raw);
      raw.once('close', () => this.#sockets.delete(raw));
    });
    this.#server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      // Node's OpenSSL callback lets every chain through and destroys the socket after the
      // handshake when it did not verify (rejectUnauthorized): that shows here as a hang-up,
      // with the verdict in authorizationError.
      const verify = socket.authorizationError;
      if (verify) this.#refuse('bad_client_certificate', String(verify), socket);
      else this.#refuse(refusalOf(err), err.code ?? err.message, socket);
      socket.destroy();
    });
    this.#server.on('secureConnection', (socket: tls.TLSSocket) => {
      // An h2 session on a TLS socket without ALPN is refused by node:http2 anyway; say why here.
      if (socket.alpnProtocol !== 'h2') {
        this.#refuse('no_h2_alpn', 'the client did not negotiate ALPN h2', socket);
        socket.destroy();
        return;
      }
      this.o.onSecure(socket);
    });
    const files = [o.files.certFile, o.files.keyFile, ...(o.files.clientCaFile !== undefined ? [o.files.clientCaFile] : [])];
    this.#watcher.watch(files, () => this.#reload());
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        this.#server.on('error', (err) => this.#logger.error({ error: err.message }, 'xDS TLS listener error'));
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting and closes every connection left: call it once the gRPC server has ended its sessions. */
  close(): void {
    this.#watcher.close();
    this.#server.close();
    for (const s of this.#sockets) s.destroy();
  }

  /** New certificate, key or client CA files: the next handshakes use them; a bad set keeps the old one. */
  #reload(): void {
    try {
      this.#server.setSecureContext(contextOptions(readXdsTls(this.#files)));
      this.#logger.info({ cert: this.#files.certFile }, 'xDS TLS certificate reloaded');
    } catch (err) {
      this.#logger.error({ error: (err as Error).message }, 'xDS TLS files changed but cannot be used; keeping the previous certificate');
    }
  }

  #refuse(reason: TlsRefusal, detail: string, socket: tls.TLSSocket): void {
    this.o.onRefused(reason);
    // A client retrying in a loop must not fill the log: one line per reason and window.
    const now = Date.now();
    const seen = this.#logged.get(reason);
    if (seen && now - seen.at < LOG_WINDOW_MS) {
      seen.suppressed++;
      return;
    }
    this.#logged.set(reason, { at: now, suppressed: 0 });
    this.#logger.warn({ reason, detail, peer: `${socket.remoteAddress}:${socket.remotePort}`, suppressed: seen?.suppressed ?? 0 }, 'xDS connection refused by TLS');
  }
}

function contextOptions(m: XdsTlsMaterial): tls.SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.clientCa ? { ca: m.clientCa } : {}) };
}

function refusalOf(err: Error & { code?: string }): TlsRefusal {
  return err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' ? 'no_client_certificate' : 'handshake';
}
