import { IssueCollector, joinPath } from './errors';
import { chainsWithHcmPath } from './listener-chains';
import type { Bootstrap, Cluster, ClusterSpecifier, MirrorPolicy, RouteConfiguration } from './model';
import { validateClusterSecretRefs, validateListenerSecretRefs, validateSecretNames } from './tls-secrets';

// Checks that span resources: names that must be unique, and references that must resolve.

/** What a reference check needs of a set of names (a Set, or a lookup over layered sets). */
export type NameSet = Pick<ReadonlySet<string>, 'has'>;

/** Paths used in issues: where a listener's chain's inline route config sits in the bootstrap. */
export function inlineRoutePath(listenerIndex: number, hcmPath = 'filter_chains[0].filters[0].typed_config'): string {
  return `static_resources.listeners[${listenerIndex}].${hcmPath}.route_config`;
}

export function validateBootstrap(b: Bootstrap, issues: IssueCollector): void {
  checkUnique(b.clusters.map((c) => c.name), 'static_resources.clusters', 'cluster', issues);
  checkUnique(b.listeners.map((l) => l.name), 'static_resources.listeners', 'listener', issues);
  checkUnique(b.listeners.map((l) => `${l.address.host}:${l.address.port}`), 'static_resources.listeners', 'listener address', issues);
  const clusters = new Set(b.clusters.map((c) => c.name));
  b.listeners.forEach((l, i) => {
    for (const { chain, hcmPath } of chainsWithHcmPath(l)) {
      const rc = chain.hcm.routeConfig;
      // Envoy validates cluster references of inline route configs unless told not to.
      if (rc && rc.validateClusters !== false) validateRouteClusters(rc, clusters, inlineRoutePath(i, hcmPath), issues);
    }
  });
  b.clusters.forEach((c, i) => validateMirrorTargets(c.mirrorPolicies, clusters,
    `static_resources.clusters[${i}].typed_extension_protocol_options`, issues));
  // TLS contexts that name a static secret need it in static_resources.secrets (Envoy: "Unknown static secret").
  validateSecretNames(b.secrets, 'static_resources.secrets', issues);
  const scope = { secrets: b.secrets, ads: Boolean(b.dynamicResources?.adsClusterName) };
  b.listeners.forEach((l, i) => validateListenerSecretRefs(l, scope, `static_resources.listeners[${i}]`, issues));
  b.clusters.forEach((c, i) => validateClusterSecretRefs(c, scope, `static_resources.clusters[${i}]`, issues));
  const ads = b.dynamicResources?.adsClusterName;
  if (ads && !clusters.has(ads)) {
    issues.add('dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name', `unknown cluster "${ads}"`);
  }
}

function checkUnique(names: readonly string[], path: string, what: string, issues: IssueCollector): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) issues.add(`${path}[${i}]`, `duplicate ${what} "${n}"`);
    seen.add(n);
  });
}

/** Every cluster a route or mirror policy names must exist. */
export function validateRouteClusters(rc: RouteConfiguration, clusters: NameSet, path: string, issues: IssueCollector): void {
  validateMirrorTargets(rc.mirrorPolicies, clusters, path, issues);
  rc.virtualHosts.forEach((vh, v) => {
    const vpath = `${path}.virtual_hosts[${v}]`;
    validateMirrorTargets(vh.mirrorPolicies, clusters, vpath, issues);
    vh.routes.forEach((r, k) => {
      if (r.action.kind !== 'forward') return;
      const rpath = `${vpath}.routes[${k}].route`;
      for (const [field, name] of namedClusters(r.action.cluster)) {
        if (!clusters.has(name)) issues.add(`${rpath}.${field}`, `unknown cluster "${name}"`);
      }
      validateMirrorTargets(r.action.mirrorPolicies, clusters, rpath, issues);
    });
  });
}

function namedClusters(spec: ClusterSpecifier): Array<[string, string]> {
  if (spec.kind === 'cluster') return spec.name ? [['cluster', spec.name]] : [];
  if (spec.kind === 'weighted_clusters') return spec.clusters.map((c, i) => [`weighted_clusters.clusters[${i}].name`, c.name]);
  return [];
}

function validateMirrorTargets(policies: readonly MirrorPolicy[], clusters: NameSet, path: string, issues: IssueCollector): void {
  policies.forEach((p, i) => {
    if (p.cluster !== null && !clusters.has(p.cluster)) {
      issues.add(`${path}.request_mirror_policies[${i}].cluster`, `unknown cluster "${p.cluster}"`);
    }
  });
}

export function clusterNames(clusters: readonly Cluster[]): Set<string> {
  return new Set(clusters.map((c) => c.name));
}

/** A cluster's own mirror policies (HttpProtocolOptions) must name existing clusters too. */
export function validateClusterMirrorTargets(c: Cluster, clusters: NameSet, path: string, issues: IssueCollector): void {
  validateMirrorTargets(c.mirrorPolicies, clusters, joinPath(path, 'typed_extension_protocol_options'), issues);
}
