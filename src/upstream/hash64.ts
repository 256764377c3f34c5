// 64-bit hashes as Envoy computes them: XXH64 (HashUtil::xxHash64, seed 0) for request hash keys
// and ring points, and libstdc++'s 64-bit MurmurHash2 (MurmurHash::murmurHash2) for rings that
// ask for MURMUR_HASH_2. XXH64 runs on the data path, so it works on 32-bit halves with no
// allocation and builds a single bigint at the end; MurmurHash2 only builds rings and uses bigint.

// Result registers of the 32-bit-half arithmetic below: (hi, lo) of the last operation.
let H = 0;
let L = 0;

/** (ah:al) * (bh:bl) mod 2^64. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33, exact
  const lo = a0 * b0 + (mid % 0x10000) * 0x10000; // < 2^33, exact
  const hi = a1 * b1 + Math.floor(mid / 0x10000) + Math.floor(lo / 0x100000000) + Math.imul(ah, bl) + Math.imul(al, bh);
  H = hi >>> 0;
  L = lo >>> 0;
}

/** (ah:al) + (bh:bl) mod 2^64. */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  H = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  L = lo >>> 0;
}

/** Rotate left by r, 0 < r < 32. */
function rotl(h: number, l: number, r: number): void {
  H = ((h << r) | (l >>> (32 - r))) >>> 0;
  L = ((l << r) | (h >>> (32 - r))) >>> 0;
}

// XXH64 primes as (hi, lo).
const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

/** XXH64_round: rotl(acc + input * P2, 31) * P1. */
function round(ah: number, al: number, ih: number, il: number): void {
  mul(ih, il, P2H, P2L);
  add(ah, al, H, L);
  rotl(H, L, 31);
  mul(H, L, P1H, P1L);
}

/** XXH64_mergeRound: (acc ^ round(0, val)) * P1 + P4. */
function mergeRound(ah: number, al: number, vh: number, vl: number): void {
  round(0, 0, vh, vl);
  mul((ah ^ H) >>> 0, (al ^ L) >>> 0, P1H, P1L);
  add(H, L, P4H, P4L);
}

const u32 = (b: Uint8Array, i: number): number => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;

/** XXH64 of `len` bytes of `b`, seeded with (sh:sl); leaves the hash in (H, L). */
function xxh64(b: Uint8Array, len: number, sh: number, sl: number): void {
  let p = 0;
  let hh: number, hl: number;
  if (len >= 32) {
    add(sh, sl, P1H, P1L); add(H, L, P2H, P2L);
    let v1h = H, v1l = L;
    add(sh, sl, P2H, P2L);
    let v2h = H, v2l = L;
    let v3h = sh, v3l = sl;
    // seed - P1 = seed + (2^64 - P1); P1's low half is not 0, so nothing carries into the high one.
    add(sh, sl, ~P1H >>> 0, -P1L >>> 0);
    let v4h = H, v4l = L;
    const limit = len - 32;
    while (p <= limit) {
      round(v1h, v1l, u32(b, p + 4), u32(b, p)); v1h = H; v1l = L;
      round(v2h, v2l, u32(b, p + 12), u32(b, p + 8)); v2h = H; v2l = L;
      round(v3h, v3l, u32(b, p + 20), u32(b, p + 16)); v3h = H; v3l = L;
      round(v4h, v4l, u32(b, p + 28), u32(b, p + 24)); v4h = H; v4l = L;
      p += 32;
    }
    rotl(v1h, v1l, 1); hh = H; hl = L;
    rotl(v2h, v2l, 7); add(hh, hl, H, L); hh = H; hl = L;
    rotl(v3h, v3l, 12); add(hh, hl, H, L); hh = H; hl = L;
    rotl(v4h, v4l, 18); add(hh, hl, H, L); hh = H; hl = L;
    mergeRound(hh, hl, v1h, v1l); hh = H; hl = L;
    mergeRound(hh, hl, v2h, v2l); hh = H; hl = L;
    mergeRound(hh, hl, v3h, v3l); hh = H; hl = L;
    mergeRound(hh, hl, v4h, v4l); hh = H; hl = L;
  } else {
    add(sh, sl, P5H, P5L); hh = H; hl = L;
  }
  add(hh, hl, Math.floor(len / 0x100000000), len >>> 0); hh = H; hl = L;
  while (p + 8 <= len) {
    round(0, 0, u32(b, p + 4), u32(b, p));
    rotl((hh ^ H) >>> 0, (hl ^ L) >>> 0, 27);
    mul(H, L, P1H, P1L);
    add(H, L, P4H, P4L); hh = H; hl = L;
    p += 8;
  }
  if (p + 4 <= len) {
    mul(0, u32(b, p), P1H, P1L);
    rotl((hh ^ H) >>> 0, (hl ^ L) >>> 0, 23);
    mul(H, L, P2H, P2L);
    add(H, L, P3H, P3L); hh = H; hl = L;
    p += 4;
  }
  while (p < len) {
    mul(0, b[p]!, P5H, P5L);
    rotl((hh ^ H) >>> 0, (hl ^ L) >>> 0, 11);
    mul(H, L, P1H, P1L); hh = H; hl = L;
    p++;
  }
  // Avalanche.
  hl = (hl ^ (hh >>> 1)) >>> 0; // h ^= h >> 33
  mul(hh, hl, P2H, P2L); hh = H; hl = L;
  hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0; // h ^= h >> 29
  hh = (hh ^ (hh >>> 29)) >>> 0;
  mul(hh, hl, P3H, P3L); hh = H; hl = L;
  hl = (hl ^ hh) >>> 0; // h ^= h >> 32
  H = hh;
  L = hl;
}

const MASK64 = (1n << 64n) - 1n;
let scratch = Buffer.allocUnsafe(1024);
const OUT = new DataView(new ArrayBuffer(8));

/**
 * Envoy's HashUtil::xxHash64: XXH64 of the UTF-8 bytes of `input` (or the bytes themselves),
 * seed 0 unless given.
 */
export function xxHash64(input: string | Uint8Array, seed = 0n): bigint {
  let bytes: Uint8Array;
  let len: number;
  if (typeof input === 'string') {
    if (input.length * 3 > scratch.length) scratch = Buffer.allocUnsafe(Math.max(input.length * 3, scratch.length * 2));
    len = scratch.write(input, 0, 'utf8');
    bytes = scratch;
  } else {
    bytes = input;
    len = input.length;
  }
  if (seed === 0n) xxh64(bytes, len, 0, 0);
  else {
    const s = seed & MASK64;
    xxh64(bytes, len, Number(s >> 32n), Number(s & 0xffffffffn));
  }
  // One bigint, built through a DataView rather than three bigint operations.
  OUT.setUint32(0, L, true);
  OUT.setUint32(4, H, true);
  return OUT.getBigUint64(0, true);
}

/** Envoy's xxHash64 over several strings: each hashed with the previous hash as its seed. */
export function xxHash64Chain(inputs: readonly string[]): bigint {
  if (inputs.length === 0) return xxHash64('');
  let h = 0n;
  for (const s of inputs) h = xxHash64(s, h);
  return h;
}

const MURMUR_MUL = 0xc6a4a7935bd1e995n;
/** Envoy's MurmurHash::STD_HASH_SEED. */
export const MURMUR_STD_SEED = 0xc70f6907n;

const shiftMix = (v: bigint): bigint => v ^ (v >> 47n);

/** Envoy's MurmurHash::murmurHash2 (libstdc++'s 64-bit _Hash_bytes); used only to build rings. */
export function murmurHash2(input: string, seed = MURMUR_STD_SEED): bigint {
  const b = Buffer.from(input, 'utf8');
  const len = b.length;
  const aligned = len & ~7;
  let hash = (seed ^ BigInt.asUintN(64, BigInt(len) * MURMUR_MUL)) & MASK64;
  for (let p = 0; p < aligned; p += 8) {
    const data = BigInt.asUintN(64, shiftMix(BigInt.asUintN(64, b.readBigUInt64LE(p) * MURMUR_MUL)) * MURMUR_MUL);
    hash = BigInt.asUintN(64, (hash ^ data) * MURMUR_MUL);
  }
  if ((len & 7) !== 0) {
    let data = 0n;
    for (let i = len - 1; i >= aligned; i--) data = (data << 8n) + BigInt(b[i]!);
    hash = BigInt.asUintN(64, (hash ^ data) * MURMUR_MUL);
  }
  hash = BigInt.asUintN(64, shiftMix(hash) * MURMUR_MUL);
  return shiftMix(hash);
}
