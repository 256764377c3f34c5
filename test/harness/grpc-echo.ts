// What every gRPC test peer shares: the echo service's proto and message types, its codec, the
// record a server keeps of each call, and the bounded log of those records.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { EventEmitter } from 'node:events';
import path from 'node:path';

export const ECHO_PROTO = path.join(__dirname, 'grpc-echo.proto');
export const ECHO_SERVICE = 'sidemirror.test.v1.Echo';
export type EchoMethod = 'Unary' | 'ServerStream' | 'ClientStream' | 'Bidi';
/** `/sidemirror.test.v1.Echo/<method>`, the :path of a call. */
export const echoPath = (method: EchoMethod): string => `/${ECHO_SERVICE}/${method}`;
/** Message size limit of the servers and clients here (grpc-js defaults to 4 MiB received). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Servers cap delay_ms and count at these. */
export const MAX_DELAY_MS = 30_000;
export const MAX_COUNT = 10_000;

export interface EchoRequest {
  message?: string;
  payload?: Buffer;
  /** ServerStream: number of replies (0 → 1). */
  count?: number;
  /** Non-zero: end the call with this gRPC status, a grpc-message and the usual trailers. */
  failWithCode?: number;
  /** Wait before each reply (or the failure), at most 30 s. */
  delayMs?: number;
  /** Leave the payload out of the reply (its hash stays). */
  omitPayload?: boolean;
}

export interface EchoReply {
  message: string;
  /** The request's payload (Unary, ServerStream, Bidi); empty for ClientStream and omitPayload. */
  payload: Buffer;
  /** 0-based position of this reply in its call. */
  index: number;
  /** The :authority the server saw. */
  authority: string;
  /** Hex sha256 and length of this call's request payloads so far, concatenated. */
  payloadSha256: string;
  payloadBytes: number;
  messagesReceived: number;
  /** The name the server was started with. */
  server: string;
}

export type CallOutcome = 'open' | 'ok' | 'failed' | 'cancelled';

/** One call as a server saw it. The mutable fields change until `outcome` is no longer 'open'. */
export interface EchoCallRecord {
  readonly id: number;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  /** Request metadata as text, binary (-bin) values in base64. grpc-js drops te, content-type, grpc-timeout first. */
  readonly metadata: Readonly<Record<string, string[]>>;
  /** CN of the client certificate (mTLS; grpc-js server only). */
  readonly peerCertificateCn?: string;
  messages: number;
  payloadBytes: number;
  /** Hex sha256 of all request payloads, final once the call has ended. */
  payloadSha256: string;
  outcome: CallOutcome;
  /** The status the call ended with: 1 (CANCELLED) when the client or a reset ended it. */
  code: number;
}

export type WaitUntil = 'started' | 'ended';

/** What both echo servers offer. */
export interface RecordingServer {
  readonly port: number;
  readonly name: string;
  /** The latest calls, oldest first, at most maxRecords of them. */
  readonly calls: readonly EchoCallRecord[];
  /**
   * Resolves with a copy of `calls` once n calls have started (or ended: the default) since the
   * server started; rejects after timeoutMs (default 5000).
   */
  waitForCalls(n: number, timeoutMs?: number, until?: WaitUntil): Promise<EchoCallRecord[]>;
  stop(): Promise<void>;
}

export interface ServerTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Needed with requireClientCert: the CA client certificates must chain to. */
  readonly ca?: string | Buffer;
  readonly requireClientCert?: boolean;
}

/** The bounded call log behind RecordingServer. */
export class CallLog {
  readonly calls: EchoCallRecord[] = [];
  #started = 0;
  #ended = 0;
  readonly #waiters = new Set<() => void>();
  constructor(private readonly maxRecords: number) {}

  start(rec: EchoCallRecord): void {
    this.calls.push(rec);
    if (this.calls.length > this.maxRecords) this.calls.shift();
    this.#started++;
    this.#notify();
  }

  /** Ends an open call; a call ends once (a cancel after the status changes nothing). */
  end(rec: EchoCallRecord, outcome: Exclude<CallOutcome, 'open'>, code: number): void {
    if (rec.outcome !== 'open') return;
    rec.outcome = outcome;
    rec.code = code;
    this.#ended++;
    this.#notify();
  }

  wait(n: number, timeoutMs = 5000, until: WaitUntil = 'ended'): Promise<EchoCallRecord[]> {
    const ready = (): boolean => (until === 'started' ? this.#started : this.#ended) >= n;
    if (ready()) return Promise.resolve(this.calls.slice());
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!ready()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(this.calls.slice());
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`expected ${n} calls ${until} within ${timeoutMs} ms; ${this.#started} started, ${this.#ended} ended`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }
}

let loaded: { definition: protoLoader.PackageDefinition; client: grpc.ServiceClientConstructor } | undefined;

/** The echo service, loaded once: its package definition and generic client constructor. */
export function echoProto(): { definition: protoLoader.PackageDefinition; client: grpc.ServiceClientConstructor } {
  if (!loaded) {
    const definition = protoLoader.loadSync(ECHO_PROTO, { keepCase: false, longs: Number, defaults: true });
    const root = grpc.loadPackageDefinition(definition) as unknown as { sidemirror: { test: { v1: { Echo: grpc.ServiceClientConstructor } } } };
    loaded = { definition, client: root.sidemirror.test.v1.Echo };
  }
  return loaded;
}

const unaryCodec = (): grpc.MethodDefinition<EchoRequest, EchoReply> =>
  (echoProto().definition[ECHO_SERVICE] as grpc.ServiceDefinition)['Unary'] as grpc.MethodDefinition<EchoRequest, EchoReply>;
/** An EchoRequest's protobuf bytes (no gRPC frame prefix). */
export const encodeEchoRequest = (req: EchoRequest): Buffer => unaryCodec().requestSerialize(req);
export const decodeEchoReply = (bytes: Buffer): EchoReply => unaryCodec().responseDeserialize(bytes);

/** Metadata as text: binary values in base64. */
export function metadataText(md: grpc.Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, values] of Object.entries(md.toJSON())) {
    out[key] = values.map((v) => (Buffer.isBuffer(v) ? v.toString('base64') : v));
  }
  return out;
}

/**
 * Writes one message; when the stream is full, waits for 'drain' or for the call to end, so a
 * writer never buffers without bound and never hangs on a call that is gone.
 */
export async function writeWithBackpressure<T>(stream: { write(msg: T): boolean } & EventEmitter, msg: T): Promise<void> {
  if (stream.write(msg)) return;
  const events = ['drain', 'close', 'error', 'cancelled', 'status', 'finish'];
  await new Promise<void>((resolve) => {
    const done = (): void => {
      for (const e of events) stream.removeListener(e, done);
      resolve();
    };
    for (const e of events) stream.on(e, done);
  });
}
