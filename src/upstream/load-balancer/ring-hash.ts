import type { RingHashConfig } from '../../config/model';
import { murmurHash2, xxHash64 } from '../hash64';
import type { Host } from '../host';
import type { HashKey, LoadBalancer } from './load-balancer';

/** Envoy's defaults for ring_hash_lb_config. */
export const DEFAULT_RING_HASH: RingHashConfig = { minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024, hashFunction: 'XX_HASH' };

/**
 * A Ketama ring as Envoy builds it (RingHashLoadBalancer::Ring): every host gets points in
 * proportion to its weight, the least-weighted host a whole number of them so the ring has at
 * least `minimumRingSize` points (at most `maximumRingSize`); point i of a host is the hash of
 * `<ip:port>_<i>`. A key lands on the first point at or after its hash, wrapping around.
 */
export class HashRing {
  /** Point hashes, ascending. */
  readonly #hashes: bigint[];
  /** The host of each point. */
  readonly #hosts: Host[];

  private constructor(hashes: bigint[], hosts: Host[]) {
    this.#hashes = hashes;
    this.#hosts = hosts;
  }

  static build(hosts: readonly Host[], config: RingHashConfig = DEFAULT_RING_HASH): HashRing {
    const usable = hosts.filter((h) => h.weight > 0);
    if (usable.length === 0) return new HashRing([], []);
    const total = usable.reduce((s, h) => s + h.weight, 0);
    const minNormalized = Math.min(...usable.map((h) => h.weight)) / total;
    // Envoy: scale so the least-weighted host gets a whole number of points, capped by the maximum.
    const scale = Math.min(Math.ceil(minNormalized * config.minimumRingSize) / minNormalized, config.maximumRingSize);
    const hash = config.hashFunction === 'MURMUR_HASH_2' ? murmurHash2 : (s: string) => xxHash64(s);
    const points: Array<{ hash: bigint; host: Host }> = [];
    // Running sums keep the point counts stable when the scale is not a whole number per host.
    let current = 0;
    let target = 0;
    for (const host of usable) {
      target += (scale * host.weight) / total;
      for (let i = 0; current < target; i++, current++) points.push({ hash: hash(`${host.addressPort}_${i}`), host });
    }
    points.sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
    return new HashRing(points.map((p) => p.hash), points.map((p) => p.host));
  }

  get size(): number {
    return this.#hashes.length;
  }

  /**
   * The host owning `hash`: the first point at or after it, or the first point when past the end.
   * `attempt` > 0 (a retry host predicate turned earlier picks down) moves that many points on, as
   * Envoy does; it may land on the same host again.
   */
  choose(hash: bigint, attempt = 0): Host | null {
    const hashes = this.#hashes;
    if (hashes.length === 0) return null;
    let lo = 0;
    let hi = hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    const point = lo === hashes.length ? 0 : lo;
    return this.#hosts[attempt > 0 ? (point + attempt) % hashes.length : point]!;
  }

  /** Points per host, for tests and diagnostics. */
  pointsPerHost(): Map<Host, number> {
    const out = new Map<Host, number>();
    for (const h of this.#hosts) out.set(h, (out.get(h) ?? 0) + 1);
    return out;
  }
}

const MASK64 = (1n << 64n) - 1n;

/** A request hash key as the unsigned 64-bit value the ring is searched with. */
export function hashKeyToU64(key: bigint | number | string): bigint {
  if (typeof key === 'bigint') return key & MASK64;
  if (typeof key === 'number') return BigInt.asUintN(64, BigInt(Math.trunc(key)));
  return xxHash64(key);
}

/**
 * Envoy's RING_HASH load balancer over the cluster's healthy hosts. The ring is rebuilt when the
 * host list changes (the cluster hands over a new array on every change); a request without a
 * hash key gets a random point, as in Envoy.
 */
export class RingHashBalancer implements LoadBalancer {
  #ring: HashRing | null = null;
  #builtFor: readonly Host[] | null = null;

  constructor(
    private readonly config: RingHashConfig = DEFAULT_RING_HASH,
    private readonly random: () => number = Math.random,
  ) {}

  // implements LoadBalancer
  pick(hosts: readonly Host[], hashKey?: HashKey, attempt = 0): Host | null {
    if (hosts.length === 0) return null;
    if (hosts !== this.#builtFor || this.#ring === null) {
      this.#ring = HashRing.build(hosts, this.config);
      this.#builtFor = hosts;
    }
    const h = hashKey === undefined || hashKey === null ? this.#randomU64() : hashKeyToU64(hashKey);
    return this.#ring.choose(h, attempt);
  }

  #randomU64(): bigint {
    const hi = Math.floor(this.random() * 0x100000000);
    const lo = Math.floor(this.random() * 0x100000000);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
}
