import { type ConfigIssue, IssueCollector, joinPath } from '../../config/errors';
import { chainsWithHcmPath } from '../../config/listener-chains';
import type { RouteConfiguration } from '../../config/model';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, type ResourceTypeUrl } from '../../config/resources';
import { type NameSet, validateClusterMirrorTargets, validateRouteClusters } from '../../config/validate';
import type { ResourceEntry, ResourceMap, ResourceSet } from '../resources-file';

// A snapshot is consistent when everything it references is in it: a client that gets a route to
// a cluster it was never sent serves 503s, and an EDS cluster or RDS listener without its
// resource never finishes warming. go-control-plane checks this before SetSnapshot; so do we.


function entries<T extends ResourceTypeUrl>(resources: ResourceMap, type: T): Array<ResourceEntry<T>> {
  // The map is keyed by type URL, so every entry under `type` is a ResourceEntry<T>.
  return [...(resources.get(type)?.values() ?? [])] as Array<ResourceEntry<T>>;
}

/** The names of one type a node sees through `layers` (an override, then the base): no copy is made. */
function visibleNames(layers: readonly ResourceMap[], type: ResourceTypeUrl): NameSet {
  if (layers.length === 1) return layers[0]!.get(type) ?? new Map();
  return { has: (name) => layers.some((l) => l.get(type)?.has(name) ?? false) };
}

/** Checks one node's resolved resources; issue paths point at the offending field in the file. */
export function checkConsistency(resources: ResourceMap, issues: IssueCollector): void {
  checkReferences(resources, [resources], issues);
}

/** Checks the references of every entry in `toCheck` against the names visible through `layers`. */
function checkReferences(toCheck: ResourceMap, layers: readonly ResourceMap[], issues: IssueCollector): void {
  const clusterNames = visibleNames(layers, CLUSTER_TYPE);
  const assignments = visibleNames(layers, ENDPOINT_TYPE);
  const routes = visibleNames(layers, ROUTE_TYPE);

  for (const c of entries(toCheck, CLUSTER_TYPE)) {
    validateClusterMirrorTargets(c.model, clusterNames, c.path, issues);
    if (c.model.type !== 'EDS') continue;
    // Envoy asks EDS for service_name when set, else for the cluster's own name.
    const wanted = c.model.edsServiceName ?? c.name;
    if (!assignments.has(wanted)) {
      const at = c.model.edsServiceName ? joinPath(c.path, 'eds_cluster_config.service_name') : joinPath(c.path, 'name');
      issues.add(at, `EDS cluster "${c.name}" has no ClusterLoadAssignment with cluster_name "${wanted}"`);
    }
  }
  for (const rc of entries(toCheck, ROUTE_TYPE)) checkRoutes(rc.model, clusterNames, rc.path, issues);
  for (const l of entries(toCheck, LISTENER_TYPE)) {
    for (const { chain, hcmPath: relative } of chainsWithHcmPath(l.model)) {
      const hcmPath = joinPath(l.path, relative);
      const rds = chain.hcm.rdsRouteConfigName;
      if (rds !== null && !routes.has(rds)) {
        issues.add(joinPath(hcmPath, 'rds.route_config_name'), `listener "${l.name}" uses RouteConfiguration "${rds}", which does not exist`);
      }
      if (chain.hcm.routeConfig) checkRoutes(chain.hcm.routeConfig, clusterNames, joinPath(hcmPath, 'route_config'), issues);
    }
  }
}

function checkRoutes(rc: RouteConfiguration, clusters: NameSet, path: string, issues: IssueCollector): void {
  // validate_clusters: false is Envoy's explicit opt-out (clusters that arrive later); honour it.
  if (rc.validateClusters === false) return;
  validateRouteClusters(rc, clusters, path, issues);
}

/**
 * Checks every view any node could get, in time linear in the size of the set. Every check is
 * "a reference names something present", and an overlay only adds or replaces names, never
 * removes one. So an entry's missing reference in a view is already missing in the smallest
 * view holding that entry as the winner: the base for base entries, base + O for O's entries.
 * A node matching a cluster override and an id override therefore needs no check of its own
 * (its issues are among those of its two single-override views), and each override is checked
 * on its own entries only, looking names up through the override and then the base. An issue
 * found only under an override says which override; the same issue is reported once.
 */
export function checkResourceSet(set: ResourceSet): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  const report = (issues: readonly ConfigIssue[], where: string): void => {
    for (const i of issues) {
      const key = `${i.path}\n${i.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(where ? { path: i.path, message: `${i.message}, for nodes matching ${where}` } : i);
    }
  };
  const base = new IssueCollector();
  checkReferences(set.base, [set.base], base);
  report(base.issues, '');
  for (const o of set.overrides) {
    const issues = new IssueCollector();
    checkReferences(o.resources, [o.resources, set.base], issues);
    report(issues.issues, `${o.path} (node ${o.match.kind} "${o.match.value}")`);
  }
  return out;
}
