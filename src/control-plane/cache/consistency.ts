import { type ConfigIssue, IssueCollector, joinPath } from '../../config/errors';
import { chainsWithHcmPath, chainsWithTcpProxyPath } from '../../config/listener-chains';
import type { RouteConfiguration, TcpProxyConfig } from '../../config/model';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, type ResourceTypeUrl } from '../../config/resources';
import { type AdsSecretRef, clusterAdsSecretRefs, listenerAdsSecretRefs, secretKindProblem } from '../../config/sds-refs';
import { type NameSet, validateClusterMirrorTargets, validateRouteClusters } from '../../config/validate';
import type { ResourceEntry, ResourceMap, ResourceSet } from '../resources-file';

// A snapshot is consistent when everything it references is in it: a client that gets a route to
// a cluster it was never sent serves 503s, and an EDS cluster, an RDS listener or a TLS context
// on an SDS secret without its resource never finishes warming. go-control-plane checks this
// before SetSnapshot; so do we.


function entries<T extends ResourceTypeUrl>(resources: ResourceMap, type: T): Array<ResourceEntry<T>> {
  // The map is keyed by type URL, so every entry under `type` is a ResourceEntry<T>.
  return [...(resources.get(type)?.values() ?? [])] as Array<ResourceEntry<T>>;
}

/** The names of one type a node sees through `layers` (an override, then the base): no copy is made. */
function visibleNames(layers: readonly ResourceMap[], type: ResourceTypeUrl): NameSet {
  if (layers.length === 1) return layers[0]!.get(type) ?? new Map();
  return { has: (name) => layers.some((l) => l.get(type)?.has(name) ?? false) };
}

/** The entry a node sees under `name` through `layers` (the first layer holding it wins). */
function visibleEntry(layers: readonly ResourceMap[], type: ResourceTypeUrl, name: string): ResourceEntry | undefined {
  for (const l of layers) {
    const e = l.get(type)?.get(name);
    if (e) return e;
  }
  return undefined;
}

/** Each `sds_config: { ads: {} }` reference must name a Secret of the snapshot, of the kind it needs. */
function checkSecretRefs(owner: string, path: string, refs: readonly AdsSecretRef[], layers: readonly ResourceMap[], issues: IssueCollector): void {
  for (const ref of refs) {
    const secret = visibleEntry(layers, SECRET_TYPE, ref.name) as ResourceEntry<typeof SECRET_TYPE> | undefined;
    const at = joinPath(path, ref.path);
    if (!secret) issues.add(at, `${owner} uses Secret "${ref.name}" (sds_config: { ads: {} }), which does not exist`);
    else {
      const problem = secretKindProblem(ref, secret.model.kind);
      if (problem) issues.add(at, `${owner}: ${problem} (${secret.path})`);
    }
  }
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
    checkSecretRefs(`cluster "${c.name}"`, c.path, clusterAdsSecretRefs(c.model), layers, issues);
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
    checkSecretRefs(`listener "${l.name}"`, l.path, listenerAdsSecretRefs(l.model), layers, issues);
    for (const { chain, hcmPath: relative } of chainsWithHcmPath(l.model)) {
      const hcmPath = joinPath(l.path, relative);
      const rds = chain.hcm.rdsRouteConfigName;
      if (rds !== null && !routes.has(rds)) {
        issues.add(joinPath(hcmPath, 'rds.route_config_name'), `listener "${l.name}" uses RouteConfiguration "${rds}", which does not exist`);
      }
      if (chain.hcm.routeConfig) checkRoutes(chain.hcm.routeConfig, clusterNames, joinPath(hcmPath, 'route_config'), issues);
    }
    for (const { chain, tcpPath } of chainsWithTcpProxyPath(l.model)) checkTcpProxyClusters(chain.tcpProxy, clusterNames, joinPath(l.path, tcpPath), `listener "${l.name}"`, issues);
  }
}

/** A TCP proxy's clusters exist (else every connection would be closed as downstream_cx_no_route). */
function checkTcpProxyClusters(t: TcpProxyConfig, clusters: NameSet, path: string, who: string, issues: IssueCollector): void {
  const named = t.cluster.kind === 'cluster'
    ? [{ name: t.cluster.name, at: joinPath(path, 'cluster') }]
    : t.cluster.clusters.map((c, i) => ({ name: c.name, at: joinPath(path, `weighted_clusters.clusters[${i}].name`) }));
  for (const { name, at } of named) if (!clusters.has(name)) issues.add(at, `${who} proxies TCP to cluster "${name}", which does not exist`);
}

/** Every Secret of one name, in the base and in each override, is of one kind. */
function checkSecretKinds(set: ResourceSet, issues: IssueCollector): void {
  const first = new Map<string, ResourceEntry<typeof SECRET_TYPE>>();
  for (const map of [set.base, ...set.overrides.map((o) => o.resources)]) {
    for (const e of entries(map, SECRET_TYPE)) {
      const seen = first.get(e.name);
      if (!seen) first.set(e.name, e);
      else if (seen.model.kind !== e.model.kind) {
        issues.add(e.path, `Secret "${e.name}" is a ${e.model.kind} here but a ${seen.model.kind} at ${seen.path}: a secret name keeps one kind in every node's view`);
      }
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
 * on its own entries only, looking names up through the override and then the base. A secret's
 * kind is the one thing an overlay could change under a reference it does not hold, so a secret
 * name keeps one kind everywhere in the set (checkSecretKinds), and every view agrees. An issue
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
  checkSecretKinds(set, base);
  checkReferences(set.base, [set.base], base);
  report(base.issues, '');
  for (const o of set.overrides) {
    const issues = new IssueCollector();
    checkReferences(o.resources, [o.resources, set.base], issues);
    report(issues.issues, `${o.path} (node ${o.match.kind} "${o.match.value}")`);
  }
  return out;
}
