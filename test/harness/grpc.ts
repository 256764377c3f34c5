// gRPC test peers for sidemirror's HTTP/2 proxying tests, in one import: the grpc-js echo server
// (grpc-server.ts), the C-core one and a raw node:http2 call (grpc-python.ts), and here a typed
// echo client and large-payload helpers. The service is grpc-echo.proto.

import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { type EchoReply, type EchoRequest, echoProto, MAX_MESSAGE_BYTES, writeWithBackpressure } from './grpc-echo';

export * from './grpc-echo';
export * from './grpc-server';
export * from './grpc-python';

export interface EchoClientOptions {
  /** TLS (with cert/key: mTLS). servername sets SNI and the name the certificate must match. */
  readonly tls?: { readonly ca: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer; readonly servername?: string };
  /** The :authority to send (grpc.default_authority); SNI still comes from the target or servername. */
  readonly authority?: string;
  readonly channelOptions?: grpc.ChannelOptions;
}

export interface EchoCallOptions {
  readonly metadata?: grpc.Metadata | Readonly<Record<string, string | Buffer>>;
  readonly deadlineMs?: number;
}

/** A finished unary or client-streaming call; never rejects on a gRPC status. */
export interface UnaryResult {
  /** null unless status.code is OK. */
  readonly reply: EchoReply | null;
  readonly status: grpc.StatusObject;
  readonly headers: grpc.Metadata;
  /** The trailing metadata (status.metadata). */
  readonly trailers: grpc.Metadata;
}

/** A finished server-streaming or bidi call: every reply that arrived before the status. */
export interface StreamResult {
  readonly replies: EchoReply[];
  readonly status: grpc.StatusObject;
  readonly headers: grpc.Metadata;
  readonly trailers: grpc.Metadata;
}

/** The generic grpc-js client's methods, typed; for calls the helpers do not cover (cancel, slow reads). */
export interface RawEchoClient extends grpc.Client {
  Unary(req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<EchoReply>): grpc.ClientUnaryCall;
  ServerStream(req: EchoRequest, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<EchoReply>): grpc.ClientWritableStream<EchoRequest>;
  Bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

export interface EchoClient {
  unary(req: EchoRequest, opts?: EchoCallOptions): Promise<UnaryResult>;
  serverStream(req: EchoRequest, opts?: EchoCallOptions): Promise<StreamResult>;
  /** Writes every request (waiting on flow control), half-closes, awaits the reply. */
  clientStream(reqs: Iterable<EchoRequest>, opts?: EchoCallOptions): Promise<UnaryResult>;
  /** Writes every request while reading replies, half-closes, awaits the status. */
  bidi(reqs: Iterable<EchoRequest>, opts?: EchoCallOptions): Promise<StreamResult>;
  readonly raw: RawEchoClient;
  close(): void;
}

function toMetadata(md: EchoCallOptions['metadata']): grpc.Metadata {
  if (md instanceof grpc.Metadata) return md;
  const out = new grpc.Metadata();
  for (const [k, v] of Object.entries(md ?? {})) out.add(k, v);
  return out;
}

const callOptions = (o: EchoCallOptions): grpc.CallOptions => (o.deadlineMs === undefined ? {} : { deadline: Date.now() + o.deadlineMs });

/** Follows one call to its status, collecting headers and replies. */
function settle<T extends { status: grpc.StatusObject }>(
  call: grpc.ClientUnaryCall | grpc.ClientReadableStream<EchoReply> | grpc.ClientWritableStream<EchoRequest> | grpc.ClientDuplexStream<EchoRequest, EchoReply>,
  result: (headers: grpc.Metadata, status: grpc.StatusObject, replies: EchoReply[]) => T,
): Promise<T> {
  const events = call as EventEmitter;
  const replies: EchoReply[] = [];
  let headers = new grpc.Metadata();
  events.on('metadata', (md: grpc.Metadata) => {
    headers = md;
  });
  events.on('data', (r: EchoReply) => replies.push(r));
  // The status event carries every outcome; errors are handled there.
  events.on('error', () => undefined);
  return new Promise((resolve) => events.on('status', (status: grpc.StatusObject) => resolve(result(headers, status, replies))));
}

/** A promise-based Echo client for target "host:port" (no scheme), closed by its own handle. */
export function echoClient(target: string, opts: EchoClientOptions = {}): EchoClient {
  const t = opts.tls;
  const credentials = t
    ? grpc.credentials.createSsl(Buffer.from(t.ca), t.key ? Buffer.from(t.key) : null, t.cert ? Buffer.from(t.cert) : null)
    : grpc.credentials.createInsecure();
  const options: grpc.ChannelOptions = {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...(t?.servername ? { 'grpc.ssl_target_name_override': t.servername } : {}),
    ...(opts.authority ? { 'grpc.default_authority': opts.authority } : {}),
    ...opts.channelOptions,
  };
  const raw = new (echoProto().client)(target, credentials, options) as unknown as RawEchoClient;
  // The reply arrives through the callback, just before the status event.
  const unaryLike = (start: (cb: grpc.requestCallback<EchoReply>) => grpc.ClientUnaryCall | grpc.ClientWritableStream<EchoRequest>) => {
    let reply: EchoReply | null = null;
    const call = start((err, value) => {
      reply = err ? null : (value ?? null);
    });
    return { call, done: settle(call, (headers, status): UnaryResult => ({ reply, status, headers, trailers: status.metadata })) };
  };
  const writeAll = async (call: grpc.ClientWritableStream<EchoRequest> | grpc.ClientDuplexStream<EchoRequest, EchoReply>, reqs: Iterable<EchoRequest>, ended: { v: boolean }) => {
    for (const req of reqs) {
      if (ended.v) return;
      await writeWithBackpressure(call, req);
    }
    call.end();
  };
  return {
    raw,
    unary: (req, o = {}) => unaryLike((cb) => raw.Unary(req, toMetadata(o.metadata), callOptions(o), cb)).done,
    serverStream: (req, o = {}) => settle(raw.ServerStream(req, toMetadata(o.metadata), callOptions(o)),
      (headers, status, replies): StreamResult => ({ replies, status, headers, trailers: status.metadata })),
    async clientStream(reqs, o = {}) {
      const { call, done } = unaryLike((cb) => raw.ClientStream(toMetadata(o.metadata), callOptions(o), cb));
      const ended = { v: false };
      void done.then(() => (ended.v = true));
      await writeAll(call as grpc.ClientWritableStream<EchoRequest>, reqs, ended);
      return done;
    },
    async bidi(reqs, o = {}) {
      const call = raw.Bidi(toMetadata(o.metadata), callOptions(o));
      const done = settle(call, (headers, status, replies): StreamResult => ({ replies, status, headers, trailers: status.metadata }));
      const ended = { v: false };
      void done.then(() => (ended.v = true));
      await writeAll(call, reqs, ended);
      return done;
    },
    close: () => raw.close(),
  };
}

/** `bytes` of deterministic, incompressible-looking data (xorshift32 from seed), so corruption shows in a hash. */
export function makePayload(bytes: number, seed = 1): Buffer {
  const buf = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  for (; i < bytes; i++) buf[i] = (x >>> ((i % 4) * 8)) & 0xff;
  return buf;
}

/** Views of buf of at most chunkBytes each, in order. */
export function chunked(buf: Buffer, chunkBytes: number): Buffer[] {
  if (chunkBytes <= 0) throw new Error('chunkBytes must be positive');
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; at += chunkBytes) out.push(buf.subarray(at, at + chunkBytes));
  return out;
}

/** Requests that carry payload in chunks of chunkBytes, each with `extra`'s fields. */
export function payloadRequests(payload: Buffer, chunkBytes: number, extra: Omit<EchoRequest, 'payload'> = {}): EchoRequest[] {
  return chunked(payload, chunkBytes).map((p) => ({ ...extra, payload: p }));
}

/** Hex sha256 of the parts concatenated. */
export function sha256Hex(...parts: Buffer[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}
