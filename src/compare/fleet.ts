import type { Logger } from '../log/logger';

// The fleet view: sidecars sharing a Redis each publish one policy's counts there (outcomes, and
// per endpoint and field the raw and noise counts), and any of them sums what every live sidecar
// published. Samples stay on the sidecar that took them: they are large and may hold data that
// must not leave the host.

/** What one sidecar publishes of one policy: counts only, which add up across sidecars. */
export interface FleetCounts {
  readonly outcomes: Readonly<Record<string, number>>;
  readonly endpoints: ReadonlyArray<{
    readonly name: string;
    readonly total: number;
    readonly diffs: number;
    readonly noise_only: number;
    readonly fields: ReadonlyArray<{ readonly path: string; readonly diffs: number; readonly noise: number }>;
  }>;
}

/** The part of an ioredis client the fleet uses (a single node or a cluster). */
export interface FleetRedis {
  multi(): {
    set(key: string, value: string, px: 'PX', ms: number): unknown;
    zadd(key: string, score: number, member: string): unknown;
    zremrangebyscore(key: string, min: number | string, max: number | string): unknown;
    pexpire(key: string, ms: number): unknown;
    exec(): Promise<unknown>;
  };
  zrangebyscore(key: string, min: number | string, max: number | string, limit: 'LIMIT', offset: number, count: number): Promise<string[]>;
  strlen(key: string): Promise<number>;
  getrange(key: string, start: number, end: number): Promise<string>;
}

export interface FleetOptions {
  readonly keyPrefix: string;
  readonly intervalMs: number;
  /** This sidecar's name among the others (node id, host and pid). */
  readonly nodeId: string;
}

/** Sidecars read per policy at most: the sum is bounded whatever the Redis holds. */
const MAX_NODES = 1000;
/** A published document larger than this is not read (a foreign writer cannot make us parse megabytes). */
export const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
/** One fleet read takes at most this much from Redis over all documents; the rest are not read. */
export const MAX_READ_BYTES = 16 * 1024 * 1024;

/** Keys of one policy share a hash tag, so that a Redis cluster keeps them on one slot (MGET works). */
function keys(o: FleetOptions, policy: string): { nodes: string; node: (id: string) => string } {
  const base = `${o.keyPrefix}{${policy}}`;
  return { nodes: `${base}:nodes`, node: (id) => `${base}:node:${id}` };
}

/** Publishes one policy's counts every interval, until stopped. */
export class FleetPublisher {
  #timer: NodeJS.Timeout | null = null;
  #lastError = 0;

  constructor(
    private readonly redis: FleetRedis,
    private readonly options: FleetOptions,
    private readonly policy: string,
    private readonly counts: () => FleetCounts | null,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.publish(), this.options.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One publish now; errors are logged (at most every 30 s) and never thrown. */
  async publish(): Promise<void> {
    const counts = this.counts();
    if (counts === null) return;
    const k = keys(this.options, this.policy);
    const ttl = this.options.intervalMs * 3;
    const now = Date.now();
    try {
      const m = this.redis.multi();
      m.set(k.node(this.options.nodeId), JSON.stringify(counts), 'PX', ttl);
      m.zadd(k.nodes, now, this.options.nodeId);
      m.zremrangebyscore(k.nodes, '-inf', now - ttl);
      m.pexpire(k.nodes, ttl);
      await m.exec();
    } catch (err) {
      if (now - this.#lastError > 30_000) {
        this.#lastError = now;
        this.logger.warn({ policy: this.policy, err: (err as Error).message }, 'compare fleet: publishing to redis failed');
      }
    }
  }
}

/**
 * The sum over every sidecar that published within three intervals, how many did, and how many
 * documents were not read: past MAX_DOCUMENT_BYTES each, or past MAX_READ_BYTES in all. Sizes are
 * asked first and each document is read only up to the size asked, so a read is bounded whatever
 * another writer of the same keys puts there (a document that grew meanwhile reads cut, and is
 * dropped as malformed).
 */
export async function readFleet(redis: FleetRedis, options: FleetOptions, policy: string): Promise<{ nodes: number; unread: number; counts: FleetCounts }> {
  const k = keys(options, policy);
  const ids = await redis.zrangebyscore(k.nodes, Date.now() - options.intervalMs * 3, '+inf', 'LIMIT', 0, MAX_NODES);
  const names = ids.map(k.node);
  const sizes = await Promise.all(names.map((n) => redis.strlen(n)));
  const wanted: Array<{ name: string; bytes: number }> = [];
  let total = 0;
  let unread = 0;
  names.forEach((name, i) => {
    const bytes = sizes[i]!;
    // 0: expired since it was listed.
    if (bytes === 0) return;
    if (bytes > MAX_DOCUMENT_BYTES || total + bytes > MAX_READ_BYTES) {
      unread++;
      return;
    }
    total += bytes;
    wanted.push({ name, bytes });
  });
  const docs = await Promise.all(wanted.map((w) => redis.getrange(w.name, 0, w.bytes - 1)));
  const parsed: FleetCounts[] = [];
  for (const doc of docs) {
    const counts = doc ? parseCounts(doc) : null;
    if (counts !== null) parsed.push(counts);
  }
  return { nodes: parsed.length, unread, counts: sumCounts(parsed) };
}

export function sumCounts(all: readonly FleetCounts[]): FleetCounts {
  const outcomes: Record<string, number> = {};
  const endpoints = new Map<string, { name: string; total: number; diffs: number; noise_only: number; fields: Map<string, { path: string; diffs: number; noise: number }> }>();
  for (const c of all) {
    for (const [o, n] of Object.entries(c.outcomes)) outcomes[o] = (outcomes[o] ?? 0) + n;
    for (const e of c.endpoints) {
      let sum = endpoints.get(e.name);
      if (!sum) endpoints.set(e.name, (sum = { name: e.name, total: 0, diffs: 0, noise_only: 0, fields: new Map() }));
      sum.total += e.total;
      sum.diffs += e.diffs;
      sum.noise_only += e.noise_only;
      for (const f of e.fields) {
        const fs = sum.fields.get(f.path);
        if (fs) {
          fs.diffs += f.diffs;
          fs.noise += f.noise;
        } else sum.fields.set(f.path, { path: f.path, diffs: f.diffs, noise: f.noise });
      }
    }
  }
  return { outcomes, endpoints: [...endpoints.values()].map((e) => ({ ...e, fields: [...e.fields.values()] })) };
}

/** Another sidecar's document, checked field by field: anything malformed drops the whole document. */
function parseCounts(doc: string): FleetCounts | null {
  let v: unknown;
  try {
    v = JSON.parse(doc);
  } catch {
    return null;
  }
  const o = v as FleetCounts;
  if (typeof o !== 'object' || o === null || typeof o.outcomes !== 'object' || o.outcomes === null || !Array.isArray(o.endpoints)) return null;
  const count = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n) && n >= 0;
  if (!Object.values(o.outcomes).every(count)) return null;
  for (const e of o.endpoints) {
    if (typeof e?.name !== 'string' || !count(e.total) || !count(e.diffs) || !count(e.noise_only) || !Array.isArray(e.fields)) return null;
    for (const f of e.fields) if (typeof f?.path !== 'string' || !count(f.diffs) || !count(f.noise)) return null;
  }
  return o;
}
