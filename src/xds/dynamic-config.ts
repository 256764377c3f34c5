import type * as protobuf from 'protobufjs';
import { listenerRdsNames } from '../config/listener-chains';
import { type ConfigIssue, formatIssues } from '../config/errors';
import { localReads } from '../config/local-reads';
import type { Cluster, ClusterLoadAssignment, Listener, RouteConfiguration } from '../config/model';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  type ResourceModels,
  type ResourceTypeUrl,
  decodeResourceBytes,
} from '../config/resources';
import { type AdsSecretRef, clusterAdsSecretRefs, listenerAdsSecretRefs, secretKindProblem } from '../config/sds-refs';
import type { Secret } from '../config/transport-model';
import type { Logger } from '../log/logger';
import type { Subscriptions, TypeSubscriber, Verdict } from './mux';

/** Where accepted, warmed resources go: the proxy's cluster manager, route registry, listeners and secret store. */
export interface DynamicConfigSink {
  setClusters(clusters: readonly Cluster[]): Promise<void>;
  setLoadAssignment(cla: ClusterLoadAssignment): void;
  setRoutes(routes: ReadonlyMap<string, RouteConfiguration>): void;
  setListeners(listeners: readonly Listener[]): Promise<void>;
  /**
   * Every SDS secret now in force (the whole set: a name left out is no longer used). Called
   * before the clusters and listeners waiting for them are applied.
   */
  setSecrets(secrets: readonly Secret[]): void;
  /** The bootstrap's own listeners and clusters: the ADS secrets they name are asked for too. */
  staticResources?(): { readonly listeners: readonly Listener[]; readonly clusters: readonly Cluster[] };
}

/** One accepted resource, with what /config_dump shows of it. */
export interface ResourceRecord<T> {
  readonly name: string;
  readonly version: string;
  readonly lastUpdated: Date;
  readonly value: T;
  readonly message: protobuf.Message;
}

export interface UpdateObserver {
  attempt(typeUrl: ResourceTypeUrl): void;
  success(typeUrl: ResourceTypeUrl): void;
  rejected(typeUrl: ResourceTypeUrl): void;
}

/**
 * A check of a decoded resource beyond what decoding knows (that its hook modules load, say),
 * made before the response is accepted; any issue NACKs the response.
 */
export type ResourceCheck = (typeUrl: ResourceTypeUrl, value: ResourceModels[ResourceTypeUrl]) => readonly ConfigIssue[];

/**
 * Binds the sockets of listeners before their response is accepted; returns why each could not
 * be bound (the response is then NACKed and the running listeners stay as they are).
 */
export type ListenerBinder = (listeners: readonly Listener[]) => Promise<readonly string[]>;

/** A listener or cluster (`Listener "name"`) and one of its references to an ADS secret. */
interface SecretUse {
  readonly owner: string;
  readonly ref: AdsSecretRef;
}

/**
 * How long a cluster waits for its endpoints and secrets, or a listener for its routes and
 * secrets (Envoy: initial_fetch_timeout, 15 s by default).
 */
const WARMING_TIMEOUT_MS = 15_000;

/**
 * The consumer side of xDS: decodes and validates each response (a bad resource rejects the
 * whole response), keeps the accepted resources, and applies them in make-before-break order:
 * a cluster waits for its endpoints and a listener for its routes before they go live, and both
 * for the SDS secrets they name, as Envoy warms them. Past the warming timeout they are applied
 * anyway, and a TLS context still without its secret refuses connections (Envoy's behaviour
 * once initial_fetch_timeout has passed).
 */
export class DynamicConfig {
  readonly clusters = new Map<string, ResourceRecord<Cluster>>();
  readonly endpoints = new Map<string, ResourceRecord<ClusterLoadAssignment>>();
  readonly listeners = new Map<string, ResourceRecord<Listener>>();
  readonly routes = new Map<string, ResourceRecord<RouteConfiguration>>();
  /** SDS secrets received for names that listeners and clusters use. */
  readonly secrets = new Map<string, ResourceRecord<Secret>>();
  /** What the proxy runs now: the secrets these use stay subscribed until they are replaced. */
  #appliedClusters: readonly Cluster[] = [];
  #appliedListeners: readonly Listener[] = [];
  #pendingClusters: Cluster[] | null = null;
  #pendingListeners: Listener[] | null = null;
  #clusterDeadline = 0;
  #listenerDeadline = 0;
  #clustersApplied = false;
  #listenersApplied = false;
  #resolveReady: () => void = () => undefined;
  /** Resolves when the first clusters and listeners have been applied. */
  readonly ready = new Promise<void>((resolve) => (this.#resolveReady = resolve));

  constructor(
    private readonly mux: Subscriptions,
    private readonly sink: DynamicConfigSink,
    private readonly logger: Logger,
    private readonly observer: UpdateObserver,
    private readonly check: ResourceCheck = () => [],
    /** Absent where listeners are bound elsewhere (a --concurrency supervisor, or its workers). */
    private readonly bindListeners?: ListenerBinder,
  ) {
    mux.watch(CLUSTER_TYPE, null, this.#subscriber(CLUSTER_TYPE, (v, r) => this.#onClusters(v, r)));
    mux.watch(ENDPOINT_TYPE, [], this.#subscriber(ENDPOINT_TYPE, (v, r) => this.#onEndpoints(v, r)));
    mux.watch(LISTENER_TYPE, null, this.#subscriber(LISTENER_TYPE, (v, r) => this.#onListeners(v, r)));
    mux.watch(ROUTE_TYPE, [], this.#subscriber(ROUTE_TYPE, (v, r) => this.#onRoutes(v, r)));
    mux.watch(SECRET_TYPE, [], this.#subscriber(SECRET_TYPE, (v, r) => this.#onSecrets(v, r)));
    // Static listeners and clusters may name ADS secrets: those go out with the first requests.
    this.#subscribeSecrets();
  }

  /** Decodes a whole response; any bad or duplicated resource rejects all of it. */
  #subscriber<T extends ResourceTypeUrl>(typeUrl: T, accept: (version: string, records: Array<ResourceRecord<ResourceModels[T]>>) => void): TypeSubscriber {
    return {
      onResponse: (version, resources): Verdict | Promise<Verdict> => {
        this.observer.attempt(typeUrl);
        const problems: string[] = [];
        const records: Array<ResourceRecord<ResourceModels[T]>> = [];
        const seen = new Set<string>();
        const now = new Date();
        // Who refers to which secret, computed once per response and only if a secret needs it.
        let users: Map<string, SecretUse[]> | null = null;
        const usersOf = (name: string): readonly SecretUse[] => (users ??= this.#secretUsers()).get(name) ?? [];
        for (const any of resources) {
          if (any.type_url !== typeUrl) {
            problems.push(`resource of type ${any.type_url} in a ${typeUrl} response`);
            continue;
          }
          const decoded = decodeResourceBytes(typeUrl, any.value, { local: localReads });
          if (!decoded.ok) {
            problems.push(formatIssues(decoded.issues));
            continue;
          }
          const checked = this.check(typeUrl, decoded.value);
          if (checked.length > 0) problems.push(formatIssues(checked));
          problems.push(...this.#secretKindProblems(typeUrl, decoded.name, decoded.value, usersOf));
          if (seen.has(decoded.name)) problems.push(`duplicate resource "${decoded.name}"`);
          seen.add(decoded.name);
          records.push({ name: decoded.name, version, lastUpdated: now, value: decoded.value, message: decoded.message });
        }
        const reject = (found: readonly string[]): Verdict => {
          this.observer.rejected(typeUrl);
          const detail = found.join('\n');
          this.logger.warn({ typeUrl, version, error: detail }, 'xDS update rejected; keeping the last good configuration');
          return detail;
        };
        if (problems.length > 0) return reject(problems);
        const admit = (): Verdict => {
          accept(version, records);
          this.observer.success(typeUrl);
          return null;
        };
        // Envoy binds a listener's socket when the listener is added, and an update whose socket
        // cannot be bound is rejected: so the NACK waits for the bind.
        if (typeUrl === LISTENER_TYPE && this.bindListeners) {
          return this.bindListeners(records.map((r) => r.value as Listener)).then((failed) => (failed.length > 0 ? reject(failed) : admit()));
        }
        return admit();
      },
    };
  }

  #onClusters(_version: string, records: Array<ResourceRecord<Cluster>>): void {
    replaceAll(this.clusters, records);
    const models = records.map((r) => r.value);
    this.mux.setNames(ENDPOINT_TYPE, models.filter((c) => c.type === 'EDS').map(edsName));
    this.#subscribeSecrets();
    this.#pendingClusters = models;
    this.#clusterDeadline = Date.now() + WARMING_TIMEOUT_MS;
    this.#tryApplyClusters();
  }

  #onEndpoints(_version: string, records: Array<ResourceRecord<ClusterLoadAssignment>>): void {
    for (const r of records) {
      // Only what we asked for: a server may send more than the names we subscribed to.
      if (!this.#wantsEndpoints(r.name)) continue;
      this.endpoints.set(r.name, r);
      this.sink.setLoadAssignment(r.value);
    }
    this.#tryApplyClusters();
  }

  #onListeners(_version: string, records: Array<ResourceRecord<Listener>>): void {
    replaceAll(this.listeners, records);
    const models = records.map((r) => r.value);
    const rdsNames = models.flatMap(listenerRdsNames);
    this.mux.setNames(ROUTE_TYPE, rdsNames);
    this.#subscribeSecrets();
    for (const name of [...this.routes.keys()]) if (!rdsNames.includes(name)) this.routes.delete(name);
    this.#pendingListeners = models;
    this.#listenerDeadline = Date.now() + WARMING_TIMEOUT_MS;
    this.#tryApplyListeners();
  }

  #onRoutes(_version: string, records: Array<ResourceRecord<RouteConfiguration>>): void {
    const wanted = new Set([...this.listeners.values()].flatMap((l) => listenerRdsNames(l.value)));
    for (const r of records) if (wanted.has(r.name)) this.routes.set(r.name, r);
    this.sink.setRoutes(new Map([...this.routes].map(([n, r]) => [n, r.value])));
    this.#tryApplyListeners();
  }

  #onSecrets(_version: string, records: Array<ResourceRecord<Secret>>): void {
    // SDS is named: a secret left out of a response is kept; one we never asked for is ignored.
    const wanted = this.#wantedSecretNames();
    let changed = false;
    for (const r of records) {
      if (!wanted.has(r.name)) continue;
      const old = this.secrets.get(r.name);
      if (old && sameMessage(old.message, r.message)) continue;
      this.secrets.set(r.name, r);
      changed = true;
    }
    if (changed) this.sink.setSecrets([...this.secrets.values()].map((r) => r.value));
    this.#tryApplyClusters();
    this.#tryApplyListeners();
  }

  /** The ADS secret references of the accepted and the running clusters and listeners, by secret name. */
  #secretUsers(): Map<string, SecretUse[]> {
    const out = new Map<string, SecretUse[]>();
    const add = (owner: string, ref: AdsSecretRef): void => {
      let list = out.get(ref.name);
      if (!list) out.set(ref.name, (list = []));
      list.push({ owner, ref });
    };
    const boot = this.sink.staticResources?.() ?? { listeners: [], clusters: [] };
    const clusters = new Set([...boot.clusters, ...[...this.clusters.values()].map((r) => r.value), ...this.#appliedClusters]);
    const listeners = new Set([...boot.listeners, ...[...this.listeners.values()].map((r) => r.value), ...this.#appliedListeners]);
    for (const c of clusters) for (const ref of clusterAdsSecretRefs(c)) add(`Cluster "${c.name}"`, ref);
    for (const l of listeners) for (const ref of listenerAdsSecretRefs(l)) add(`Listener "${l.name}"`, ref);
    return out;
  }

  #wantedSecretNames(): Set<string> {
    return new Set(this.#secretUsers().keys());
  }

  /** Asks for the secrets in use, and forgets those no longer used. */
  #subscribeSecrets(): void {
    const wanted = this.#wantedSecretNames();
    this.mux.setNames(SECRET_TYPE, [...wanted]);
    let dropped = false;
    for (const name of [...this.secrets.keys()]) {
      if (wanted.has(name)) continue;
      this.secrets.delete(name);
      dropped = true;
    }
    if (dropped) this.sink.setSecrets([...this.secrets.values()].map((r) => r.value));
  }

  /**
   * One name is one secret on the ADS stream: a secret must be of the kind every reference to
   * it needs (a certificate, or a validation context), checked whichever of them comes second.
   */
  #secretKindProblems(typeUrl: ResourceTypeUrl, name: string, value: ResourceModels[ResourceTypeUrl], usersOf: (name: string) => readonly SecretUse[]): string[] {
    if (typeUrl === SECRET_TYPE) {
      const kind = (value as Secret).kind;
      return usersOf(name).flatMap(({ owner, ref }) => {
        const problem = secretKindProblem(ref, kind);
        return problem ? [`Secret "${name}": ${owner}.${ref.path}: ${problem}`] : [];
      });
    }
    if (typeUrl !== CLUSTER_TYPE && typeUrl !== LISTENER_TYPE) return [];
    const refs = typeUrl === CLUSTER_TYPE ? clusterAdsSecretRefs(value as Cluster) : listenerAdsSecretRefs(value as Listener);
    const owner = `${typeUrl === CLUSTER_TYPE ? 'Cluster' : 'Listener'} "${name}"`;
    return refs.flatMap((ref) => {
      const held = this.secrets.get(ref.name);
      const problem = held ? secretKindProblem(ref, held.value.kind) : null;
      return problem ? [`${owner}.${ref.path}: ${problem}`] : [];
    });
  }

  #missingSecrets(refs: readonly AdsSecretRef[]): boolean {
    return refs.some((r) => !this.secrets.has(r.name));
  }

  #wantsEndpoints(name: string): boolean {
    const clusters = this.#pendingClusters ?? [...this.clusters.values()].map((r) => r.value);
    return clusters.some((c) => c.type === 'EDS' && edsName(c) === name);
  }

  #tryApplyClusters(): void {
    const pending = this.#pendingClusters;
    if (!pending) return;
    const waiting = pending.filter((c) => (c.type === 'EDS' && !this.endpoints.has(edsName(c))) || this.#missingSecrets(clusterAdsSecretRefs(c)));
    if (waiting.length > 0 && Date.now() < this.#clusterDeadline) {
      this.#retryLater(() => this.#tryApplyClusters(), this.#clusterDeadline);
      return;
    }
    if (waiting.length > 0) this.logger.warn({ clusters: waiting.map((c) => c.name) }, 'clusters warmed without their endpoints or secrets');
    this.#pendingClusters = null;
    this.sink.setClusters(pending).then(() => {
      this.#appliedClusters = pending;
      this.#subscribeSecrets();
      this.#clustersApplied = true;
      this.#checkReady();
      // Listeners may have been waiting for these clusters.
      this.#tryApplyListeners();
    }, (err: unknown) => this.logger.error({ err: (err as Error).message }, 'applying clusters failed'));
  }

  #tryApplyListeners(): void {
    const pending = this.#pendingListeners;
    if (!pending) return;
    const waiting = pending.filter((l) => listenerRdsNames(l).some((n) => !this.routes.has(n)) || this.#missingSecrets(listenerAdsSecretRefs(l)));
    if ((waiting.length > 0 && Date.now() < this.#listenerDeadline) || this.#pendingClusters !== null) {
      this.#retryLater(() => this.#tryApplyListeners(), Math.max(this.#listenerDeadline, this.#clusterDeadline));
      return;
    }
    if (waiting.length > 0) this.logger.warn({ listeners: waiting.map((l) => l.name) }, 'listeners warmed without their routes or secrets');
    this.#pendingListeners = null;
    this.sink.setListeners(pending).then(() => {
      this.#appliedListeners = pending;
      this.#subscribeSecrets();
      this.#listenersApplied = true;
      this.#checkReady();
    }, (err: unknown) => this.logger.error({ err: (err as Error).message }, 'applying listeners failed'));
  }

  #timers = new Set<NodeJS.Timeout>();

  /** Re-checks warming when its deadline passes, in case what it waits for never arrives. */
  #retryLater(fn: () => void, deadline: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, Math.max(0, deadline - Date.now()) + 10);
    timer.unref();
    this.#timers.add(timer);
  }

  #checkReady(): void {
    if (this.#clustersApplied && this.#listenersApplied) this.#resolveReady();
  }

  /** The last accepted version of a type (`version_info` of /clusters and /config_dump). */
  version(typeUrl: ResourceTypeUrl): string {
    return this.mux.version(typeUrl);
  }

  clusterVersion(): string {
    return this.mux.version(CLUSTER_TYPE);
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}

export function edsName(c: Cluster): string {
  return c.edsServiceName ?? c.name;
}

function replaceAll<T>(map: Map<string, ResourceRecord<T>>, records: ReadonlyArray<ResourceRecord<T>>): void {
  const previous = new Map(map);
  map.clear();
  for (const r of records) {
    // An unchanged resource keeps the version and time at which it last changed.
    const old = previous.get(r.name);
    map.set(r.name, old && sameMessage(old.message, r.message) ? old : r);
  }
}

function sameMessage(a: protobuf.Message, b: protobuf.Message): boolean {
  return Buffer.compare(encoded(a), encoded(b)) === 0;
}

function encoded(message: protobuf.Message): Buffer {
  const type = (message as unknown as { $type: protobuf.Type }).$type;
  return Buffer.from(type.encode(message).finish());
}
