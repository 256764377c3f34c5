// The grpc-js echo server: answers the four call kinds of grpc-echo.proto, sends custom initial
// and trailing metadata, fails on request, and records every call it sees.

import * as grpc from '@grpc/grpc-js';
import { createHash, type Hash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import {
  CallLog, type CallOutcome, type EchoCallRecord, type EchoMethod, type EchoReply, type EchoRequest, echoProto,
  MAX_COUNT, MAX_DELAY_MS, MAX_MESSAGE_BYTES, metadataText, type RecordingServer, type ServerTls, writeWithBackpressure,
} from './grpc-echo';

export interface EchoServerOptions {
  readonly tls?: ServerTls;
  /** In every reply's `server`, in `x-echo-server` and `x-echo-trailer` (default 'echo'). */
  readonly name?: string;
  /** How many call records to keep (default 1000). */
  readonly maxRecords?: number;
}

export type EchoServer = RecordingServer;

type AnyServerCall = grpc.ServerUnaryCall<EchoRequest, EchoReply> | grpc.ServerReadableStream<EchoRequest, EchoReply>
  | grpc.ServerWritableStream<EchoRequest, EchoReply> | grpc.ServerDuplexStream<EchoRequest, EchoReply>;

/** One call: its record, the running payload hash, and the metadata it answers with. */
class EchoCall {
  readonly rec: EchoCallRecord;
  readonly #hash: Hash = createHash('sha256');

  constructor(call: AnyServerCall, method: EchoMethod, id: number, private readonly log: CallLog, private readonly name: string) {
    const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
    this.rec = {
      id, method, path: call.getPath(), authority: call.getHost(), metadata: metadataText(call.metadata),
      ...(cn ? { peerCertificateCn: String(cn) } : {}),
      messages: 0, payloadBytes: 0, payloadSha256: '', outcome: 'open', code: 0,
    };
    log.start(this.rec);
    (call as EventEmitter).on('cancelled', () => this.#end('cancelled', grpc.status.CANCELLED));
    const initial = new grpc.Metadata();
    initial.set('x-echo-server', name);
    initial.set('x-echo-authority', this.rec.authority);
    // Request metadata named echo-* comes back, so a test can see what crossed the proxy both ways.
    for (const [key, values] of Object.entries(call.metadata.toJSON())) {
      if (key.startsWith('echo-')) for (const v of values) initial.add(key, v);
    }
    call.sendMetadata(initial);
  }

  get open(): boolean {
    return this.rec.outcome === 'open';
  }

  receive(req: EchoRequest): void {
    const payload = req.payload ?? Buffer.alloc(0);
    this.#hash.update(payload);
    this.rec.messages++;
    this.rec.payloadBytes += payload.length;
  }

  /** The reply to req as of now. */
  reply(req: EchoRequest, index: number, withPayload: boolean): EchoReply {
    return {
      message: req.message ?? '', payload: withPayload && !req.omitPayload ? (req.payload ?? Buffer.alloc(0)) : Buffer.alloc(0),
      index, authority: this.rec.authority, payloadSha256: this.#hash.copy().digest('hex'), payloadBytes: this.rec.payloadBytes,
      messagesReceived: this.rec.messages, server: this.name,
    };
  }

  trailers(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('x-echo-trailer', this.name);
    md.set('x-echo-messages', String(this.rec.messages));
    md.set('x-echo-payload-sha256', this.#digest());
    return md;
  }

  /** Marks the call ok and returns its trailers. */
  ok(): grpc.Metadata {
    const md = this.trailers();
    this.#end('ok', grpc.status.OK);
    return md;
  }

  /** Marks the call failed and returns the status to end it with. */
  failure(code: number): grpc.ServerErrorResponse {
    const metadata = this.trailers();
    this.#end('failed', code);
    const details = `failed as asked: ${code}`;
    return Object.assign(new Error(details), { code, details, metadata });
  }

  #digest(): string {
    if (this.rec.payloadSha256 === '') this.rec.payloadSha256 = this.#hash.copy().digest('hex');
    return this.rec.payloadSha256;
  }

  #end(outcome: Exclude<CallOutcome, 'open'>, code: number): void {
    this.#digest();
    this.log.end(this.rec, outcome, code);
  }
}

/** A grpc-js Echo server on 127.0.0.1:0 (h2c, or TLS/mTLS with opts.tls) that stops by its own handle. */
export async function startEchoServer(opts: EchoServerOptions = {}): Promise<EchoServer> {
  const name = opts.name ?? 'echo';
  const log = new CallLog(opts.maxRecords ?? 1000);
  const timers = new Set<NodeJS.Timeout>();
  let ids = 0;
  const later = (ms: number | undefined): Promise<void> => {
    const wait = Math.min(Math.max(ms ?? 0, 0), MAX_DELAY_MS);
    if (wait === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, wait);
      timers.add(t);
    });
  };
  const begin = (call: AnyServerCall, method: EchoMethod): EchoCall => new EchoCall(call, method, ++ids, log, name);

  const handlers: grpc.UntypedServiceImplementation = {
    Unary: async (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, done: grpc.sendUnaryData<EchoReply>) => {
      const c = begin(call, 'Unary');
      const req = call.request;
      c.receive(req);
      const reply = c.reply(req, 0, true);
      await later(req.delayMs);
      if (!c.open) return;
      if (req.failWithCode) return done(c.failure(req.failWithCode));
      done(null, reply, c.ok());
    },
    ServerStream: async (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      const c = begin(call, 'ServerStream');
      const req = call.request;
      c.receive(req);
      const reply = c.reply(req, 0, true);
      const count = Math.min(Math.max(req.count ?? 0, 1), MAX_COUNT);
      for (let i = 0; i < count; i++) {
        await later(req.delayMs);
        if (!c.open) return;
        if (req.failWithCode) return void call.emit('error', c.failure(req.failWithCode));
        await writeWithBackpressure(call, { ...reply, index: i });
      }
      if (c.open) call.end(c.ok());
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, done: grpc.sendUnaryData<EchoReply>) => {
      const c = begin(call, 'ClientStream');
      let last: EchoRequest = {};
      call.on('data', (req: EchoRequest) => {
        c.receive(req);
        last = req;
      });
      call.on('error', () => undefined);
      call.on('end', async () => {
        await later(last.delayMs);
        if (!c.open) return;
        if (last.failWithCode) return done(c.failure(last.failWithCode));
        const reply = c.reply(last, 0, false);
        done(null, reply, c.ok());
      });
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      const c = begin(call, 'Bidi');
      let index = 0;
      call.on('error', () => undefined);
      call.on('data', async (req: EchoRequest) => {
        // One request at a time: reading waits while a reply is delayed or the client reads slowly.
        call.pause();
        c.receive(req);
        const reply = c.reply(req, index++, true);
        await later(req.delayMs);
        if (!c.open) return;
        if (req.failWithCode) return void call.emit('error', c.failure(req.failWithCode));
        await writeWithBackpressure(call, reply);
        call.resume();
      });
      call.on('end', () => {
        if (c.open) call.end(c.ok());
      });
    },
  };

  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  server.addService(echoProto().client.service, handlers);
  const t = opts.tls;
  const credentials = t
    ? grpc.ServerCredentials.createSsl(t.ca ? Buffer.from(t.ca) : null, [{ private_key: Buffer.from(t.key), cert_chain: Buffer.from(t.cert) }], t.requireClientCert ?? false)
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    name,
    calls: log.calls,
    waitForCalls: (n, timeoutMs, until) => log.wait(n, timeoutMs, until),
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      server.forceShutdown();
    },
  };
}
