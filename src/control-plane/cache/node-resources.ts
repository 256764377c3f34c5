import type { ResourceTypeUrl } from '../../config/resources';
import type { NodeOverride, ResourceEntry, ResourceMap, ResourceSet } from '../resources-file';

// Which resources a node sees: the base set, then the override matching its cluster, then the
// one matching its id — applied in that order so an id match wins over a cluster match.

export interface NodeKey {
  readonly id: string;
  readonly cluster: string;
}

/** A stable string for a node: nodes with the same id and cluster see the same resources. */
export function nodeKeyString(node: NodeKey): string {
  return JSON.stringify([node.id, node.cluster]);
}

/** The overrides that apply to `node`, weakest first (cluster before id). */
export function matchingOverrides(set: ResourceSet, node: NodeKey): NodeOverride[] {
  const byCluster = set.overrides.filter((o) => o.match.kind === 'cluster' && o.match.value === node.cluster);
  const byId = set.overrides.filter((o) => o.match.kind === 'id' && o.match.value === node.id);
  return [...byCluster, ...byId];
}

/** Base resources with each override laid over them: same type and name replaces, new names add. */
export function overlay(base: ResourceMap, overrides: readonly NodeOverride[]): ResourceMap {
  if (overrides.length === 0) return base;
  const out = new Map<ResourceTypeUrl, Map<string, ResourceEntry>>();
  for (const [type, byName] of base) out.set(type, new Map(byName));
  for (const o of overrides) {
    for (const [type, byName] of o.resources) {
      let target = out.get(type);
      if (!target) out.set(type, (target = new Map()));
      for (const [name, entry] of byName) target.set(name, entry);
    }
  }
  return out;
}

export function resolveForNode(set: ResourceSet, node: NodeKey): ResourceMap {
  return overlay(set.base, matchingOverrides(set, node));
}
