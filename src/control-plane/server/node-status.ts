import { type ResourceTypeUrl, TYPE_SHORT } from '../../config/resources';
import type { NodeKey } from '../cache/node-resources';

// What each node has been sent and what it said back: the ACK/NACK view of the admin API.
// Kept after a node disconnects (with zero streams) so a NACK stays visible for the operator.

export interface NackRecord {
  /** The version the node rejected (the one we sent with the NACKed nonce). */
  readonly version: string;
  readonly nonce: string;
  readonly error: string;
  readonly at: string;
}

export interface TypeStatus {
  sentVersion: string | null;
  sentNonce: string | null;
  sentAt: string | null;
  ackedVersion: string | null;
  ackedAt: string | null;
  lastNack: NackRecord | null;
}

export interface NodeStatus {
  readonly id: string;
  cluster: string;
  streams: number;
  readonly types: Partial<Record<string, TypeStatus>>;
}

/** Disconnected nodes kept for the admin view; past this the longest-gone are forgotten first. */
export const MAX_DISCONNECTED_NODES = 10_000;
/** Bytes of all node records together; past this the longest-gone are forgotten first. */
export const MAX_RECORD_BYTES = 32 * 1024 * 1024;

/** Fixed cost of a record and of one type's status, beside the strings it holds. */
const RECORD_OVERHEAD = 128;
const TYPE_OVERHEAD = 160;

export interface NodeStatusLimits {
  readonly maxDisconnected?: number;
  readonly maxRecordBytes?: number;
  /** Called with the number of records forgotten to stay under a cap (for stats). */
  readonly onForget?: (count: number) => void;
}

export class NodeStatusRegistry {
  private readonly nodes = new Map<string, NodeStatus>();
  /** Node ids with no open stream, oldest disconnection first (Map keeps insertion order). */
  private readonly disconnected = new Map<string, true>();
  /** Approximate bytes held per node id (strings counted as UTF-16 code units × 2). */
  private readonly sizes = new Map<string, number>();
  private totalBytes = 0;
  private readonly maxDisconnected: number;
  private readonly maxRecordBytes: number;
  private readonly onForget: (count: number) => void;

  constructor(
    private readonly now: () => Date = () => new Date(),
    limits: number | NodeStatusLimits = {},
  ) {
    const l = typeof limits === 'number' ? { maxDisconnected: limits } : limits;
    this.maxDisconnected = l.maxDisconnected ?? MAX_DISCONNECTED_NODES;
    this.maxRecordBytes = l.maxRecordBytes ?? MAX_RECORD_BYTES;
    this.onForget = l.onForget ?? (() => undefined);
  }

  /** Bytes all records hold now (an estimate: what the strings and fixed parts take). */
  get recordBytes(): number {
    return this.totalBytes;
  }

  streamOpened(node: NodeKey): void {
    this.get(node).streams += 1;
    this.disconnected.delete(node.id);
  }

  streamClosed(node: NodeKey): void {
    const s = this.get(node);
    s.streams = Math.max(0, s.streams - 1);
    if (s.streams > 0) return;
    // Node ids come from clients: keep the record of gone nodes, but not without bound.
    this.disconnected.delete(node.id);
    this.disconnected.set(node.id, true);
    this.evict();
  }

  sent(node: NodeKey, type: ResourceTypeUrl, version: string, nonce: string): void {
    this.update(node, type, { sentVersion: version, sentNonce: nonce, sentAt: this.stamp() });
  }

  /** `version` is what the client sent: the caller keeps it short (clip.ts). */
  acked(node: NodeKey, type: ResourceTypeUrl, version: string): void {
    this.update(node, type, { ackedVersion: version, ackedAt: this.stamp() });
  }

  /** `error` is what the client sent: the caller keeps it short (clip.ts). */
  nacked(node: NodeKey, type: ResourceTypeUrl, version: string, nonce: string, error: string): void {
    this.update(node, type, { lastNack: { version, nonce, error, at: this.stamp() } });
  }

  /** The last NACK of a type for a node id, if any (tests and the admin API). */
  lastNack(nodeId: string, type: ResourceTypeUrl): NackRecord | null {
    return this.nodes.get(nodeId)?.types[TYPE_SHORT[type]]?.lastNack ?? null;
  }

  /** The admin view: `{ [node id]: { cluster, streams, types: { cds: { sent_version, acked_version, last_nack… } } } }`. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [id, s] of this.nodes) {
      const types: Record<string, unknown> = {};
      for (const [short, t] of Object.entries(s.types)) {
        if (!t) continue;
        types[short] = {
          sent_version: t.sentVersion, sent_nonce: t.sentNonce, sent_at: t.sentAt,
          acked_version: t.ackedVersion, acked_at: t.ackedAt, last_nack: t.lastNack,
        };
      }
      out[id] = { cluster: s.cluster, streams: s.streams, types };
    }
    return out;
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  private get(node: NodeKey): NodeStatus {
    let s = this.nodes.get(node.id);
    if (!s) this.nodes.set(node.id, (s = { id: node.id, cluster: node.cluster, streams: 0, types: {} }));
    if (s.cluster !== node.cluster || !this.sizes.has(node.id)) {
      s.cluster = node.cluster;
      this.resize(s);
    }
    return s;
  }

  private update(node: NodeKey, type: ResourceTypeUrl, change: Partial<TypeStatus>): void {
    Object.assign(this.type(node, type), change);
    this.resize(this.nodes.get(node.id)!);
    this.evict();
  }

  /** Recounts one record's bytes into the total. */
  private resize(s: NodeStatus): void {
    // The id is held twice: as the map key and in the record.
    let bytes = RECORD_OVERHEAD + 2 * (2 * s.id.length + s.cluster.length);
    for (const t of Object.values(s.types)) {
      if (!t) continue;
      bytes += TYPE_OVERHEAD + 2 * ((t.sentVersion?.length ?? 0) + (t.sentNonce?.length ?? 0) + (t.ackedVersion?.length ?? 0));
      if (t.lastNack) bytes += 2 * (t.lastNack.version.length + t.lastNack.nonce.length + t.lastNack.error.length);
    }
    this.totalBytes += bytes - (this.sizes.get(s.id) ?? 0);
    this.sizes.set(s.id, bytes);
  }

  /** Forgets the longest-gone nodes while over either cap; connected nodes are never forgotten. */
  private evict(): void {
    let forgotten = 0;
    for (const id of this.disconnected.keys()) {
      if (this.disconnected.size <= this.maxDisconnected && this.totalBytes <= this.maxRecordBytes) break;
      this.disconnected.delete(id);
      this.nodes.delete(id);
      this.totalBytes -= this.sizes.get(id) ?? 0;
      this.sizes.delete(id);
      forgotten += 1;
    }
    if (forgotten > 0) this.onForget(forgotten);
  }

  private type(node: NodeKey, type: ResourceTypeUrl): TypeStatus {
    const s = this.get(node);
    const short = TYPE_SHORT[type];
    return (s.types[short] ??= { sentVersion: null, sentNonce: null, sentAt: null, ackedVersion: null, ackedAt: null, lastNack: null });
  }
}
