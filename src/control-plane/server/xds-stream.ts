import { status as GrpcStatus } from '@grpc/grpc-js';
import { type ResourceTypeUrl, TYPE_ORDER, TYPE_SHORT, isResourceType, isWildcardType } from '../../config/resources';
import type { Logger } from '../../log/logger';
import type { NodeKey } from '../cache/node-resources';
import type { SnapshotCache } from '../cache/snapshot-cache';
import type { ControlPlaneMetrics } from '../metrics';
import { type DiscoveryRequest, discoveryResponse } from './codec';
import { MAX_CLIENT_VERSION_BYTES, MAX_ERROR_DETAIL_BYTES, clip } from './clip';
import type { NodeStatusRegistry } from './node-status';

// The state-of-the-world protocol of one xDS stream (ADS or a per-type service), independent of
// grpc-js: requests go in through handle(), responses come out through deps.send. Per type it
// remembers the subscription, the latest nonce and what was last sent, and sends only when the
// node's snapshot version for that type moved past it or newly requested names became available.

export interface StreamDeps {
  readonly cache: SnapshotCache;
  readonly status: NodeStatusRegistry;
  readonly metrics: ControlPlaneMetrics;
  readonly logger: Logger;
  /** Writes one DiscoveryResponse (plain object) on the wire. */
  readonly send: (response: Record<string, unknown>) => void;
  /** The type of a per-type service (StreamClusters…); null for ADS, which carries all five. */
  readonly fixedType: ResourceTypeUrl | null;
}

/** Longest node id plus cluster a stream may carry: they are kept per node and logged. */
export const MAX_NODE_KEY_BYTES = 8192;

/** Ends the stream with a gRPC status. */
export class StreamError extends Error {
  constructor(readonly code: GrpcStatus, message: string) {
    super(message);
    this.name = 'StreamError';
  }
}

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** The latest nonce sent for this type on this stream; null before the first response. */
  nonce: string | null;
  sentVersion: string | null;
  /** Names the client holds from us (sent and still subscribed), to spot newly requested ones. */
  sentNames: Set<string>;
}

export class XdsStream {
  private node: NodeKey | null = null;
  private nonceCounter = 0;
  private readonly types = new Map<ResourceTypeUrl, TypeState>();

  constructor(private readonly deps: StreamDeps) {}

  /** The node from the stream's first request; null until then. */
  get nodeKey(): NodeKey | null {
    return this.node;
  }

  /** Processes one DiscoveryRequest; throws StreamError for a request the stream cannot go on after. */
  handle(req: DiscoveryRequest): void {
    if (!this.node) {
      // Only the first request must carry the node; later ones may omit it (xDS protocol).
      if (!req.node) throw new StreamError(GrpcStatus.INVALID_ARGUMENT, 'the first DiscoveryRequest on a stream must carry node');
      const keyBytes = Buffer.byteLength(req.node.id) + Buffer.byteLength(req.node.cluster);
      if (keyBytes > MAX_NODE_KEY_BYTES) {
        this.deps.metrics.streamsRefused.inc({ reason: 'node_too_large' });
        throw new StreamError(GrpcStatus.INVALID_ARGUMENT, `node.id and node.cluster are ${keyBytes} bytes; at most ${MAX_NODE_KEY_BYTES} are accepted`);
      }
      this.node = req.node;
      this.deps.status.streamOpened(this.node);
    }
    const typeUrl = req.typeUrl || this.deps.fixedType;
    if (!typeUrl) throw new StreamError(GrpcStatus.INVALID_ARGUMENT, 'type_url is required on an ADS stream');
    if (this.deps.fixedType && typeUrl !== this.deps.fixedType) {
      throw new StreamError(GrpcStatus.INVALID_ARGUMENT, `this service serves ${this.deps.fixedType}, not ${typeUrl}`);
    }
    if (!isResourceType(typeUrl)) {
      // RTDS, ECDS…: we hold none, and SotW has no "does not exist" answer, so stay silent.
      this.deps.logger.debug({ node: this.node.id, type_url: typeUrl }, 'request for a type this control plane does not serve');
      return;
    }
    let state = this.types.get(typeUrl);
    // A nonce only means something for a type we already answered on this stream; a client that
    // carried one over from an earlier stream is treated as asking afresh rather than ignored forever.
    if (req.responseNonce && state && state.nonce !== null) {
      if (req.responseNonce !== state.nonce) {
        this.deps.logger.debug({ node: this.node.id, type: TYPE_SHORT[typeUrl], nonce: req.responseNonce, latest: state.nonce }, 'stale nonce ignored');
        return;
      }
      if (req.errorDetail) this.nack(typeUrl, state, req);
      else this.ack(typeUrl, req);
    }
    if (!state) this.types.set(typeUrl, (state = { wildcard: false, names: new Set(), nonce: null, sentVersion: null, sentNames: new Set() }));
    this.subscribe(typeUrl, state, req.resourceNames);
    this.respond(typeUrl, state);
  }

  /** After a snapshot change: answers every subscribed type whose version moved, in SDS, CDS, EDS, LDS, RDS order. */
  push(): void {
    if (!this.node) return;
    for (const type of TYPE_ORDER) {
      const state = this.types.get(type);
      if (state) this.respond(type, state);
    }
  }

  /** The stream ended: the node has one stream fewer. */
  close(): void {
    if (this.node) this.deps.status.streamClosed(this.node);
  }

  private subscribe(typeUrl: ResourceTypeUrl, state: TypeState, names: readonly string[]): void {
    // LDS/CDS: no names or "*" is the wildcard; RDS/EDS always name what they want.
    state.wildcard = isWildcardType(typeUrl) && (names.length === 0 || names.includes('*'));
    state.names = new Set(names.filter((n) => n !== '*'));
    // A name the client dropped must be sent again if it asks for it later.
    if (!state.wildcard) for (const n of state.sentNames) if (!state.names.has(n)) state.sentNames.delete(n);
  }

  private respond(typeUrl: ResourceTypeUrl, state: TypeState): void {
    const node = this.node!;
    const snap = this.deps.cache.snapshotFor(node).types.get(typeUrl)!;
    const selected = [...snap.resources.values()].filter((e) => state.wildcard || state.names.has(e.name));
    // SotW has no "not found": for named types, nothing to send until a requested name exists.
    if (!state.wildcard && selected.length === 0) return;
    // The first answer on a stream is always sent, even at the version the client says it has:
    // after a control-plane restart the same version string may name different resources.
    const first = state.nonce === null;
    const moved = snap.version !== state.sentVersion;
    const added = selected.some((e) => !state.sentNames.has(e.name));
    if (!first && !moved && !added) return;

    const nonce = String(++this.nonceCounter);
    state.nonce = nonce;
    state.sentVersion = snap.version;
    state.sentNames = new Set(selected.map((e) => e.name));
    this.deps.send(discoveryResponse(typeUrl, snap.version, nonce, selected.map((e) => e.bytes)));
    this.deps.status.sent(node, typeUrl, snap.version, nonce);
    this.deps.metrics.responses.inc({ type: TYPE_SHORT[typeUrl] });
    this.deps.logger.debug({ node: node.id, type: TYPE_SHORT[typeUrl], version: snap.version, nonce, resources: selected.length }, 'sent');
  }

  private ack(typeUrl: ResourceTypeUrl, req: DiscoveryRequest): void {
    const node = this.node!;
    const version = clip(req.versionInfo, MAX_CLIENT_VERSION_BYTES).text;
    this.deps.status.acked(node, typeUrl, version);
    this.deps.metrics.acks.inc({ type: TYPE_SHORT[typeUrl] });
    this.deps.logger.info({ node: node.id, cluster: node.cluster, type: TYPE_SHORT[typeUrl], version, nonce: req.responseNonce }, 'ACK');
  }

  private nack(typeUrl: ResourceTypeUrl, state: TypeState, req: DiscoveryRequest): void {
    const node = this.node!;
    // The rejected version is the one sent with this nonce; req.version_info is the one still in force.
    const version = state.sentVersion ?? '';
    const { text: error, clipped } = clip(req.errorDetail!.message, MAX_ERROR_DETAIL_BYTES);
    if (clipped) this.deps.metrics.nackDetailsTruncated.inc();
    const inForce = clip(req.versionInfo, MAX_CLIENT_VERSION_BYTES).text;
    this.deps.status.nacked(node, typeUrl, version, req.responseNonce, error);
    this.deps.metrics.nacks.inc({ type: TYPE_SHORT[typeUrl] });
    this.deps.logger.warn({ node: node.id, cluster: node.cluster, type: TYPE_SHORT[typeUrl], version, in_force: inForce, nonce: req.responseNonce, error }, 'NACK');
    // sentVersion stays: the same version is not sent again, only a newer one.
  }
}
