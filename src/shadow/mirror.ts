import { type ResponseTap, fanOutTap } from '../compare/capture';
import type { MirrorPolicy } from '../config/model';
import type { HeaderMap } from '../http/headers';
import type { HeaderLookup } from '../router/matchers';
import { randomUint32 } from '../router/route-table';
import type { Runtime } from '../runtime/runtime';
import type { ShadowCounters, StatsScopes } from '../stats/scopes';
import type { ClusterManager } from '../upstream/cluster-manager';
import { shadowHeaders } from './clone';
import type { CompiledExtPolicy } from './ext-policy';
import { shouldShadow } from './sample';
import { headerStatsName, targetName } from './select';
import { type ShadowEndSink, reportingCounters } from './shadow-end';
import { ENVOY_SHADOW, type ShadowStream, type ShadowWriter } from './writer';

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
  /** What the client spoke, for mirror clusters with use_downstream_protocol_config. */
  readonly downstreamProtocol?: 'HTTP/1.1' | 'HTTP/2';
  readonly timeoutMs: number;
  /** The proxy's own address on this connection, appended to the shadow's x-forwarded-for. */
  readonly proxyAddress: string;
  /** The client's address (consistent sampling by source IP). */
  readonly remoteAddress: string;
  readonly format: (value: string) => string;
  /** The route's name: compared requests are grouped by it (else by method and path). */
  readonly routeName?: string;
  /** Told how each shadow of this request ends (the shadow access logger); absent: nobody asks. */
  readonly shadowLog?: ShadowEndSink | null;
}

/** The shadows started for one request. */
export interface MirrorStart {
  /** Where the request body goes (often none). */
  readonly streams: readonly ShadowStream[];
  /** Sync-mode policies: headers to add to the primary's response, once they are done (bounded). */
  readonly sync: Promise<Record<string, string>> | null;
  /** Comparing policies: the primary's response is shown to this as it streams to the client. */
  readonly tap?: ResponseTap | null;
}

const NONE: MirrorStart = { streams: [], sync: null };

/**
 * Runs DESIGN §3 steps 1–4 for each policy: select the target, sample, clone, send. Envoy's
 * policies take the short path here; sidemirror's extended policies run their own (hooks,
 * budgets, sync mode) and go through the same shadow writer. Every reason for not sending is
 * counted; none of them touches the primary.
 */
export class Mirror {
  constructor(
    private readonly clusters: ClusterManager,
    private readonly writer: ShadowWriter,
    private readonly runtime: Runtime,
    private readonly stats: StatsScopes,
  ) {}

  /** Starts the shadows for one request. */
  start(policies: readonly MirrorPolicy[], ext: readonly CompiledExtPolicy[], primary: PrimaryRequest): MirrorStart {
    let streams: ShadowStream[] | null = null;
    let syncs: Array<Promise<Record<string, string>>> | null = null;
    let taps: ResponseTap[] | null = null;
    for (const policy of policies) {
      const stream = this.#startEnvoy(policy, primary);
      if (stream !== null) (streams ??= []).push(stream);
    }
    for (const policy of ext) {
      const started = policy.start(primary);
      if (started.stream !== null) (streams ??= []).push(started.stream);
      if (started.sync !== null) (syncs ??= []).push(started.sync);
      if (started.tap) (taps ??= []).push(started.tap);
    }
    if (streams === null && syncs === null && taps === null) return NONE;
    return { streams: streams ?? [], sync: syncs === null ? null : mergeHeaders(syncs), tap: taps === null ? null : fanOutTap(taps) };
  }

  #startEnvoy(policy: MirrorPolicy, primary: PrimaryRequest): ShadowStream | null {
    const target = targetName(policy, primary.header);
    if (!target.ok) {
      this.#counters(target.statsName, primary).skipped('missing_header');
      return null;
    }
    const cluster = this.clusters.get(target.cluster);
    // An unknown name from a header is counted under the header, never under the client's value.
    const statsName = cluster ? target.cluster : policy.cluster ?? headerStatsName(policy.clusterHeader!);
    const counters = this.#counters(statsName, primary);
    if (!shouldShadow(policy, this.runtime, randomUint32())) {
      counters.skipped('sampling');
      return null;
    }
    if (!cluster) {
      counters.skipped('unknown_cluster');
      return null;
    }
    const stream = this.writer.start({
      cluster,
      stats: counters,
      method: primary.method,
      path: primary.path,
      headers: shadowHeaders(primary.headers, policy, primary.proxyAddress, primary.format),
      hasBody: primary.hasBody,
      timeoutMs: primary.timeoutMs,
      downstreamProtocol: primary.downstreamProtocol,
      options: ENVOY_SHADOW,
    });
    if (stream !== null && !primary.hasBody) {
      stream.end();
      return null;
    }
    return stream;
  }

  #counters(statsName: string, primary: PrimaryRequest): ShadowCounters {
    const stats = this.stats.shadow(statsName);
    return primary.shadowLog ? reportingCounters(stats, statsName, null, primary.shadowLog) : stats;
  }
}

async function mergeHeaders(all: ReadonlyArray<Promise<Record<string, string>>>): Promise<Record<string, string>> {
  return Object.assign({}, ...(await Promise.all(all))) as Record<string, string>;
}
