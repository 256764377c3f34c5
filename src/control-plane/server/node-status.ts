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

export class NodeStatusRegistry {
  private readonly nodes = new Map<string, NodeStatus>();
  /** Node ids with no open stream, oldest disconnection first (Map keeps insertion order). */
  private readonly disconnected = new Map<string, true>();

  constructor(
    private readonly now: () => Date = () => new Date(),
    private readonly maxDisconnected = MAX_DISCONNECTED_NODES,
  ) {}

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
    for (const id of this.disconnected.keys()) {
      if (this.disconnected.size <= this.maxDisconnected) break;
      this.disconnected.delete(id);
      this.nodes.delete(id);
    }
  }

  sent(node: NodeKey, type: ResourceTypeUrl, version: string, nonce: string): void {
    Object.assign(this.type(node, type), { sentVersion: version, sentNonce: nonce, sentAt: this.stamp() });
  }

  acked(node: NodeKey, type: ResourceTypeUrl, version: string): void {
    Object.assign(this.type(node, type), { ackedVersion: version, ackedAt: this.stamp() });
  }

  nacked(node: NodeKey, type: ResourceTypeUrl, version: string, nonce: string, error: string): void {
    this.type(node, type).lastNack = { version, nonce, error, at: this.stamp() };
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
    s.cluster = node.cluster;
    return s;
  }

  private type(node: NodeKey, type: ResourceTypeUrl): TypeStatus {
    const s = this.get(node);
    const short = TYPE_SHORT[type];
    return (s.types[short] ??= { sentVersion: null, sentNonce: null, sentAt: null, ackedVersion: null, ackedAt: null, lastNack: null });
  }
}
