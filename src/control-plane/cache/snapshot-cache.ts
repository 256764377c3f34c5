import { createHash } from 'node:crypto';
import { ConfigError } from '../../config/errors';
import { CLUSTER_TYPE, ENDPOINT_TYPE, type ResourceTypeUrl, TYPE_ORDER } from '../../config/resources';
import { EMPTY_RESOURCE_SET, type ResourceEntry, type ResourceSet } from '../resources-file';
import { checkResourceSet } from './consistency';
import { DEFAULT_MAX_MESSAGE_BYTES, checkMessageSizes } from './message-size';
import { type NodeKey, nodeKeyString, resolveForNode } from './node-resources';

// go-control-plane's snapshot cache, apart from the gRPC server: it holds the current resource
// set, derives one versioned snapshot per node (the base set plus that node's overrides), and
// tells watchers when snapshots change. It knows nothing about streams, nonces or ACKs.

/** One type of one node's snapshot. */
export interface TypeSnapshot {
  /** The snapshot version at which this type's content last changed for this node. */
  readonly version: string;
  readonly resources: ReadonlyMap<string, ResourceEntry>;
  /** Content hash over names and bytes, so unchanged types keep their version. */
  readonly hash: string;
}

export interface Snapshot {
  /** The cache version this snapshot was computed at. */
  readonly version: string;
  readonly types: ReadonlyMap<ResourceTypeUrl, TypeSnapshot>;
}

/** Called after setResources with the keys (nodeKeyString) of nodes whose snapshot changed. */
export type CacheWatcher = (changedNodes: ReadonlySet<string>) => void;

export class SnapshotCache {
  private set: ResourceSet = EMPTY_RESOURCE_SET;
  private counter = 0;
  private currentVersion = '0';
  private readonly nodes = new Map<string, { node: NodeKey; snapshot: Snapshot }>();
  private readonly watchers = new Set<CacheWatcher>();

  /** `maxMessageBytes`: the largest DiscoveryResponse any node may be sent (the sidecars' receive limit). */
  constructor(readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** The version of the last accepted resource set ("0" before any). */
  get version(): string {
    return this.currentVersion;
  }

  /** The last accepted resource set (base plus overrides). */
  get resources(): ResourceSet {
    return this.set;
  }

  /**
   * Checks consistency for every view a node could get, then installs the set and recomputes the
   * snapshot of every known node. Throws ConfigError (and keeps the previous set) when inconsistent,
   * SnapshotTooLargeError when some node's response would exceed maxMessageBytes.
   * Returns the new version: `<version_info>-<n>` when the file names one, else `<n>`.
   */
  setResources(set: ResourceSet): string {
    const issues = checkResourceSet(set);
    if (issues.length > 0) throw new ConfigError(issues);
    checkMessageSizes(set, this.maxMessageBytes);
    this.counter += 1;
    // The counter keeps versions unique even when a file keeps its version_info across edits.
    this.currentVersion = set.versionInfo ? `${set.versionInfo}-${this.counter}` : String(this.counter);
    this.set = set;
    const changed = new Set<string>();
    for (const [key, known] of this.nodes) {
      const next = this.compute(known.node, known.snapshot);
      if (TYPE_ORDER.some((t) => next.types.get(t)?.version !== known.snapshot.types.get(t)?.version)) changed.add(key);
      known.snapshot = next;
    }
    for (const w of this.watchers) w(changed);
    return this.currentVersion;
  }

  /** The node's current snapshot; a node seen for the first time becomes known (and is kept up to date). */
  snapshotFor(node: NodeKey): Snapshot {
    const key = nodeKeyString(node);
    let known = this.nodes.get(key);
    if (!known) this.nodes.set(key, (known = { node, snapshot: this.compute(node, undefined) }));
    return known.snapshot;
  }

  /** Drops a node no stream serves any more, so node churn does not grow the cache or slow setResources. */
  forget(node: NodeKey): void {
    this.nodes.delete(nodeKeyString(node));
  }

  /** Registers a watcher; returns the function that removes it. */
  watch(watcher: CacheWatcher): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  private compute(node: NodeKey, previous: Snapshot | undefined): Snapshot {
    const resolved = resolveForNode(this.set, node);
    const types = new Map<ResourceTypeUrl, TypeSnapshot>();
    for (const type of TYPE_ORDER) {
      const resources = resolved.get(type) ?? new Map<string, ResourceEntry>();
      const hash = contentHash(resources);
      const before = previous?.types.get(type);
      // A changed cluster is re-warmed by Envoy, which then waits for a fresh EDS response even if
      // the endpoints are the same: bump EDS whenever CDS changes.
      const forced = type === ENDPOINT_TYPE && types.get(CLUSTER_TYPE)?.version !== previous?.types.get(CLUSTER_TYPE)?.version;
      const version = before && before.hash === hash && !forced ? before.version : this.currentVersion;
      types.set(type, { version, resources, hash });
    }
    return { version: this.currentVersion, types };
  }
}

function contentHash(resources: ReadonlyMap<string, ResourceEntry>): string {
  const h = createHash('sha256');
  for (const name of [...resources.keys()].sort()) {
    h.update(name).update('\0').update(resources.get(name)!.bytes).update('\0');
  }
  return h.digest('hex');
}
