import type { MirrorPolicy } from '../config/model';
import type { HeaderMap } from '../http/headers';
import type { HeaderLookup } from '../router/matchers';
import { randomUint32 } from '../router/route-table';
import type { Runtime } from '../runtime/runtime';
import type { StatsScopes } from '../stats/scopes';
import type { ClusterManager } from '../upstream/cluster-manager';
import { shadowHeaders } from './clone';
import { shouldShadow } from './sample';
import { headerStatsName, targetName } from './select';
import type { ShadowStream, ShadowWriter } from './writer';

/** What the router knows of the primary request when it decides on shadows. */
export interface PrimaryRequest {
  readonly method: string;
  /** Path as sent to the primary upstream (after any rewrite). */
  readonly path: string;
  /** Headers as sent to the primary upstream. */
  readonly headers: HeaderMap;
  /** Reads the downstream request's headers (for cluster_header). */
  readonly header: HeaderLookup;
  readonly hasBody: boolean;
  readonly timeoutMs: number;
  /** The proxy's own address on this connection, appended to the shadow's x-forwarded-for. */
  readonly proxyAddress: string;
  readonly format: (value: string) => string;
}

/**
 * Runs DESIGN §3 steps 1–4 for each policy: select the target, sample, clone, send. Every
 * reason for not sending is counted; none of them touches the primary.
 */
export class Mirror {
  constructor(
    private readonly clusters: ClusterManager,
    private readonly writer: ShadowWriter,
    private readonly runtime: Runtime,
    private readonly stats: StatsScopes,
  ) {}

  /** Starts the shadows for one request; returns their body streams (often none). */
  start(policies: readonly MirrorPolicy[], primary: PrimaryRequest): ShadowStream[] {
    let streams: ShadowStream[] | null = null;
    for (const policy of policies) {
      const stream = this.#startOne(policy, primary);
      if (stream !== null) (streams ??= []).push(stream);
    }
    return streams ?? NONE;
  }

  #startOne(policy: MirrorPolicy, primary: PrimaryRequest): ShadowStream | null {
    const target = targetName(policy, primary.header);
    if (!target.ok) {
      this.stats.shadow(target.statsName).skipped('missing_header');
      return null;
    }
    const cluster = this.clusters.get(target.cluster);
    // An unknown name from a header is counted under the header, never under the client's value.
    const statsName = cluster ? target.cluster : policy.cluster ?? headerStatsName(policy.clusterHeader!);
    if (!shouldShadow(policy, this.runtime, randomUint32())) {
      this.stats.shadow(statsName).skipped('sampling');
      return null;
    }
    if (!cluster) {
      this.stats.shadow(statsName).skipped('unknown_cluster');
      return null;
    }
    return this.writer.start({
      cluster,
      stats: this.stats.shadow(statsName),
      method: primary.method,
      path: primary.path,
      headers: shadowHeaders(primary.headers, policy, primary.proxyAddress, primary.format),
      hasBody: primary.hasBody,
      timeoutMs: primary.timeoutMs,
    });
  }
}

const NONE: ShadowStream[] = [];
