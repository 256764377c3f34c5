import { type ConfigIssue, IssueCollector, joinPath } from '../../config/errors';
import type { RouteConfiguration } from '../../config/model';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, type ResourceTypeUrl } from '../../config/resources';
import { validateClusterMirrorTargets, validateRouteClusters } from '../../config/validate';
import type { ResourceEntry, ResourceMap, ResourceSet } from '../resources-file';
import { possibleViews } from './node-resources';

// A snapshot is consistent when everything it references is in it: a client that gets a route to
// a cluster it was never sent serves 503s, and an EDS cluster or RDS listener without its
// resource never finishes warming. go-control-plane checks this before SetSnapshot; so do we.

const HCM_PATH = 'filter_chains[0].filters[0].typed_config';

function entries<T extends ResourceTypeUrl>(resources: ResourceMap, type: T): Array<ResourceEntry<T>> {
  // The map is keyed by type URL, so every entry under `type` is a ResourceEntry<T>.
  return [...(resources.get(type)?.values() ?? [])] as Array<ResourceEntry<T>>;
}

/** Checks one node's resolved resources; issue paths point at the offending field in the file. */
export function checkConsistency(resources: ResourceMap, issues: IssueCollector): void {
  const clusters = entries(resources, CLUSTER_TYPE);
  const clusterNames = new Set(clusters.map((c) => c.name));
  const assignments = resources.get(ENDPOINT_TYPE) ?? new Map();
  const routes = resources.get(ROUTE_TYPE) ?? new Map();

  for (const c of clusters) {
    validateClusterMirrorTargets(c.model, clusterNames, c.path, issues);
    if (c.model.type !== 'EDS') continue;
    // Envoy asks EDS for service_name when set, else for the cluster's own name.
    const wanted = c.model.edsServiceName ?? c.name;
    if (!assignments.has(wanted)) {
      const at = c.model.edsServiceName ? joinPath(c.path, 'eds_cluster_config.service_name') : joinPath(c.path, 'name');
      issues.add(at, `EDS cluster "${c.name}" has no ClusterLoadAssignment with cluster_name "${wanted}"`);
    }
  }
  for (const rc of entries(resources, ROUTE_TYPE)) checkRoutes(rc.model, clusterNames, rc.path, issues);
  for (const l of entries(resources, LISTENER_TYPE)) {
    const hcmPath = joinPath(l.path, HCM_PATH);
    const rds = l.model.hcm.rdsRouteConfigName;
    if (rds !== null && !routes.has(rds)) {
      issues.add(joinPath(hcmPath, 'rds.route_config_name'), `listener "${l.name}" uses RouteConfiguration "${rds}", which does not exist`);
    }
    if (l.model.hcm.routeConfig) checkRoutes(l.model.hcm.routeConfig, clusterNames, joinPath(hcmPath, 'route_config'), issues);
  }
}

function checkRoutes(rc: RouteConfiguration, clusters: ReadonlySet<string>, path: string, issues: IssueCollector): void {
  // validate_clusters: false is Envoy's explicit opt-out (clusters that arrive later); honour it.
  if (rc.validateClusters === false) return;
  validateRouteClusters(rc, clusters, path, issues);
}

/**
 * Checks every view any node could get (base, and base with each override combination). An
 * issue found only under an override says which override; the same issue is reported once.
 */
export function checkResourceSet(set: ResourceSet): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const view of possibleViews(set)) {
    const issues = new IssueCollector();
    checkConsistency(view.resources, issues);
    const where = view.overrides.map((o) => `${o.path} (node ${o.match.kind} "${o.match.value}")`).join(' + ');
    for (const i of issues.issues) {
      const key = `${i.path}\n${i.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(where ? { path: i.path, message: `${i.message}, for nodes matching ${where}` } : i);
    }
  }
  return out;
}
