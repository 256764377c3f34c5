import * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { messageType, typeForUrl } from '../../src/config/proto';

// A bare xDS client for tests, built on grpc-js and our protobufjs types: the test says exactly
// which DiscoveryRequests go out and inspects every DiscoveryResponse that comes back.

const REQUEST = messageType('envoy.service.discovery.v3.DiscoveryRequest');
const RESPONSE = messageType('envoy.service.discovery.v3.DiscoveryResponse');
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, arrays: true };

export const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

export interface RequestSpec {
  version_info?: string;
  node?: { id: string; cluster?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}

export interface Response {
  version_info: string;
  type_url: string;
  nonce: string;
  control_plane: { identifier: string } | null;
  /** Each Any decoded with its type, as a plain snake_case object. */
  resources: Array<{ type_url: string; value: Record<string, unknown> }>;
  /** Resource names (ClusterLoadAssignment: cluster_name). */
  names: string[];
}

export class XdsTestClient {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<RequestSpec, Response>;
  private readonly received: Response[] = [];
  private waiter: (() => void) | null = null;
  status: grpc.StatusObject | null = null;

  constructor(port: number, method = ADS_METHOD, metadata: Record<string, string> = {}) {
    this.client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    this.call = this.client.makeBidiStreamRequest<RequestSpec, Response>(
      method,
      (req) => Buffer.from(REQUEST.encode(REQUEST.fromObject(req)).finish()),
      (buf) => decodeResponse(buf),
      Object.entries(metadata).reduce((m, [k, v]) => (m.add(k, v), m), new grpc.Metadata()),
    );
    this.call.on('data', (r: Response) => {
      this.received.push(r);
      this.waiter?.();
    });
    this.call.on('status', (s) => {
      this.status = s;
      this.waiter?.();
    });
    this.call.on('error', () => undefined); // the status event carries what the tests look at
  }

  send(req: RequestSpec): void {
    this.call.write(req);
  }

  /** The next response, or a rejection after `timeoutMs`. */
  async next(timeoutMs = 2000): Promise<Response> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length === 0) {
      if (this.status) throw new Error(`stream ended: ${this.status.code} ${this.status.details}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.received.shift()!;
  }

  /** Resolves when nothing arrives for `ms`; rejects with what did arrive otherwise. */
  async expectNothing(ms = 300): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.received.length > 0) {
      const r = this.received[0]!;
      throw new Error(`unexpected response: ${r.type_url} version ${r.version_info} nonce ${r.nonce}`);
    }
  }

  /** Waits for the stream's final status (after the server ends it). */
  async ended(timeoutMs = 2000): Promise<grpc.StatusObject> {
    const deadline = Date.now() + timeoutMs;
    while (!this.status && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (!this.status) throw new Error('stream did not end');
    return this.status;
  }

  close(): void {
    this.call.end();
    this.call.cancel();
    this.client.close();
  }
}

function decodeResponse(buf: Buffer): Response {
  const o = RESPONSE.toObject(RESPONSE.decode(buf), { ...TO_OBJECT, bytes: Array }) as Record<string, never>;
  const resources = (o.resources as Array<{ type_url: string; value: number[] }>).map((any) => {
    const type = typeForUrl(any.type_url);
    if (!type) throw new Error(`unknown type ${any.type_url}`);
    return { type_url: any.type_url, value: type.toObject(type.decode(Uint8Array.from(any.value)), TO_OBJECT) };
  });
  return {
    version_info: o.version_info,
    type_url: o.type_url,
    nonce: o.nonce,
    control_plane: o.control_plane,
    resources,
    names: resources.map((r) => String(r.value.name || r.value.cluster_name)),
  };
}
