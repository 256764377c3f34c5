import * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { messageType } from '../config/proto';
import { DEFAULT_MAX_XDS_MESSAGE_BYTES } from '../config/resources';

// One ADS stream to the management server, reopened with jittered exponential backoff when it
// breaks. It knows nothing of resource types, versions or nonces: that is the mux's job.
//
// When the backoff starts over: Envoy (GrpcStream::onReceiveMessage) and gRPC's XdsClient (A57)
// reset it on the first message a stream receives. Then a server whose second response is
// over our receive limit (or which fails every stream after one good answer) gets a reconnect,
// and the whole snapshot again, every half second forever. So here the backoff starts over only
// when a stream that received a response also stayed up for `stableAfterMs`; a stream that
// breaks sooner counts as one more failed attempt, whatever it received.

const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

/** A DiscoveryRequest as plain data (snake_case, as in the proto). */
export interface DiscoveryRequest {
  version_info?: string;
  node?: { id: string; cluster: string; user_agent_name?: string; user_agent_version?: string };
  resource_names?: string[];
  type_url: string;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}

/** A DiscoveryResponse with its resources still as Any bytes. */
export interface DiscoveryResponse {
  version_info: string;
  resources: Array<{ type_url: string; value: Uint8Array }>;
  type_url: string;
  nonce: string;
}

export interface AdsStreamHandlers {
  /** The stream is open; send the subscriptions now (nonces of the old stream no longer count). */
  onOpen(): void;
  onResponse(response: DiscoveryResponse): void;
  onClose(reason: string): void;
}

export interface BackoffOptions {
  readonly baseMs: number;
  readonly maxMs: number;
  /** How long a stream must stay up (after a response) for the backoff to start over; 10 s by default. */
  readonly stableAfterMs?: number;
}

/** Credentials for a new channel, and the channel options they need (SNI). */
export interface AdsChannelSecurity {
  readonly credentials: grpc.ChannelCredentials;
  readonly options: grpc.ChannelOptions;
}

/** TLS to the management server, kept current: what a rotated certificate changes applies to the next stream. */
export interface AdsChannelCredentials {
  /** From the current certificates; a string says why there are none (the stream then waits and retries). */
  current(): AdsChannelSecurity | string;
  /** Calls `listener` after the certificates changed; returns the function that stops it. */
  onUpdate(listener: () => void): () => void;
  close(): void;
}

/** What goes on the channel beside the target (from the bootstrap's ADS GrpcService). */
export interface AdsChannelOptions {
  /** `initial_metadata`, sent with every stream (e.g. `authorization: Bearer …`). */
  readonly metadata?: ReadonlyArray<{ readonly key: string; readonly value: string }>;
  /** Largest message accepted; 0 is unlimited (Envoy's meaning); 4 MiB by default. */
  readonly maxReceiveMessageBytes?: number | null;
  /** TLS from the ADS cluster's transport_socket (the stream owns and closes it); absent: plaintext. */
  readonly credentials?: AdsChannelCredentials;
}

const PLAINTEXT: AdsChannelCredentials = {
  current: () => ({ credentials: grpc.credentials.createInsecure(), options: {} }),
  onUpdate: () => () => undefined,
  close: () => undefined,
};

const DEFAULT_STABLE_AFTER_MS = 10_000;

/** The next delay: exponential, capped, with full jitter (AWS-style), so a fleet does not reconnect in step. */
export function nextBackoff(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(o.maxMs, o.baseMs * 2 ** attempt);
  return Math.max(o.baseMs / 2, Math.floor(random() * ceiling));
}

export class AdsStream {
  #client: grpc.Client | null = null;
  /** The credentials changed since #client was made: the next stream gets a new channel. */
  #stale = false;
  readonly #credentials: AdsChannelCredentials;
  readonly #unwatchCredentials: () => void;
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #requestType: protobuf.Type;
  readonly #responseType: protobuf.Type;
  #call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | null = null;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #connected = false;
  readonly #metadata: grpc.Metadata;

  constructor(
    private readonly target: string,
    private readonly handlers: AdsStreamHandlers,
    private readonly backoff: BackoffOptions = { baseMs: 500, maxMs: 30_000 },
    channel: AdsChannelOptions = {},
  ) {
    const max = channel.maxReceiveMessageBytes ?? DEFAULT_MAX_XDS_MESSAGE_BYTES;
    this.#channelOptions = {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.initial_reconnect_backoff_ms': backoff.baseMs,
      'grpc.max_reconnect_backoff_ms': backoff.maxMs,
      'grpc.max_receive_message_length': max === 0 ? -1 : max,
    };
    this.#credentials = channel.credentials ?? PLAINTEXT;
    this.#unwatchCredentials = this.#credentials.onUpdate(() => (this.#stale = true));
    this.#metadata = new grpc.Metadata();
    for (const { key, value } of channel.metadata ?? []) this.#metadata.add(key, value);
    this.#requestType = messageType('envoy.service.discovery.v3.DiscoveryRequest');
    this.#responseType = messageType('envoy.service.discovery.v3.DiscoveryResponse');
  }

  get connected(): boolean {
    return this.#connected;
  }

  start(): void {
    this.#open();
  }

  send(request: DiscoveryRequest): void {
    this.#call?.write(request);
  }

  close(): void {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#call?.cancel();
    this.#client?.close();
    this.#unwatchCredentials();
    this.#credentials.close();
  }

  /** The channel for a new stream: the current one, or a new one when the credentials changed. */
  #channel(): grpc.Client | string {
    if (this.#client && !this.#stale) return this.#client;
    const security = this.#credentials.current();
    if (typeof security === 'string') return security;
    // Only between streams: the stream that ran on the old channel has ended.
    this.#client?.close();
    this.#client = new grpc.Client(this.target, security.credentials, { ...this.#channelOptions, ...security.options });
    this.#stale = false;
    return this.#client;
  }

  #open(): void {
    if (this.#closed) return;
    const client = this.#channel();
    if (typeof client === 'string') {
      this.handlers.onClose(client);
      this.#scheduleReopen();
      return;
    }
    const call = client.makeBidiStreamRequest<DiscoveryRequest, DiscoveryResponse>(
      ADS_METHOD,
      (req) => Buffer.from(this.#requestType.encode(this.#requestType.fromObject(req)).finish()),
      (buf) => this.#responseType.toObject(this.#responseType.decode(buf), { longs: String, defaults: true, arrays: true }) as DiscoveryResponse,
      this.#metadata.clone(),
    );
    this.#call = call;
    const openedAt = Date.now();
    let received = false;
    let ended = false;
    const end = (reason: string): void => {
      if (ended) return;
      ended = true;
      this.#connected = false;
      if (received && Date.now() - openedAt >= (this.backoff.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS)) this.#attempt = 0;
      if (this.#call === call) this.#call = null;
      this.handlers.onClose(reason);
      this.#scheduleReopen();
    };
    call.on('data', (response: DiscoveryResponse) => {
      received = true;
      this.#connected = true;
      this.handlers.onResponse(response);
    });
    call.on('error', (err: grpc.ServiceError) => end(`${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    call.on('end', () => end('stream ended by the server'));
    // gRPC opens lazily; the subscriptions written now go out as soon as the stream is up.
    this.handlers.onOpen();
  }

  #scheduleReopen(): void {
    if (this.#closed) return;
    const delay = nextBackoff(this.#attempt++, this.backoff);
    this.#retryTimer = setTimeout(() => this.#open(), delay);
    this.#retryTimer.unref();
  }
}
