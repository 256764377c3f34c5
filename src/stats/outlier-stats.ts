import { type Cell, type OutlierCounter, type OutlierEjectionType, type StatsRegistry } from './registry';

/** Envoy's cluster.<name>.outlier_detection.* for one cluster, bound once. */
export class OutlierStats {
  /** Hosts ejected right now (a gauge: each detector adds its own and takes them back when it stops). */
  readonly ejectionsActive: Cell;
  readonly #counters = new Map<OutlierCounter, Cell>();

  constructor(cluster: string, registry: StatsRegistry) {
    const l = { envoy_cluster_name: cluster };
    this.ejectionsActive = registry.clusterOutlierActive.labels(l);
    for (const [name, family] of Object.entries(registry.clusterOutlier)) this.#counters.set(name as OutlierCounter, family.labels(l));
  }

  inc(name: OutlierCounter): void {
    this.#counters.get(name)!.inc();
  }

  detected(type: OutlierEjectionType): void {
    this.inc(`ejections_detected_${type}`);
  }

  enforced(type: OutlierEjectionType): void {
    this.inc('ejections_enforced_total');
    this.inc(`ejections_enforced_${type}`);
  }
}
