import * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { messageType } from '../config/proto';

// One ADS stream to the management server, reopened with jittered exponential backoff when it
// breaks. It knows nothing of resource types, versions or nonces: that is the mux's job.

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
}

/** The next delay: exponential, capped, with full jitter (AWS-style), so a fleet does not reconnect in step. */
export function nextBackoff(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(o.maxMs, o.baseMs * 2 ** attempt);
  return Math.max(o.baseMs / 2, Math.floor(random() * ceiling));
}

export class AdsStream {
  readonly #client: grpc.Client;
  readonly #requestType: protobuf.Type;
  readonly #responseType: protobuf.Type;
  #call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | null = null;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #connected = false;

  constructor(
    target: string,
    private readonly handlers: AdsStreamHandlers,
    private readonly backoff: BackoffOptions = { baseMs: 500, maxMs: 30_000 },
  ) {
    this.#client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.initial_reconnect_backoff_ms': backoff.baseMs,
      'grpc.max_reconnect_backoff_ms': backoff.maxMs,
    });
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
    this.#client.close();
  }

  #open(): void {
    if (this.#closed) return;
    const call = this.#client.makeBidiStreamRequest<DiscoveryRequest, DiscoveryResponse>(
      ADS_METHOD,
      (req) => Buffer.from(this.#requestType.encode(this.#requestType.fromObject(req)).finish()),
      (buf) => this.#responseType.toObject(this.#responseType.decode(buf), { longs: String, defaults: true, arrays: true }) as DiscoveryResponse,
    );
    this.#call = call;
    let ended = false;
    const end = (reason: string): void => {
      if (ended) return;
      ended = true;
      this.#connected = false;
      if (this.#call === call) this.#call = null;
      this.handlers.onClose(reason);
      this.#scheduleReopen();
    };
    call.on('data', (response: DiscoveryResponse) => {
      if (!this.#connected) {
        this.#connected = true;
        this.#attempt = 0;
      }
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
