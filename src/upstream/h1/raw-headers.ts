// Response header lines as the pool's handlers get them, and the few the pool reads itself.
// Node's parser gives latin1 strings; undici's handlers (and sidemirror's, written for undici)
// take Buffers, each line as it came.

/** Node's Buffer class without Buffer.from's checks: a view on memory that is already there (undici uses it the same way). */
const FastBuffer = (Buffer as unknown as { [Symbol.species]: new (buffer: ArrayBufferLike, byteOffset: number, length: number) => Buffer })[Symbol.species];

/** `raw` as Buffers, one per name and value, in order: one copy of them all, and a view per line. */
export function rawHeaders(raw: readonly string[]): Buffer[] {
  let all = '';
  for (let i = 0; i < raw.length; i++) all += raw[i]!;
  const bytes = Buffer.from(all, 'latin1');
  const out = new Array<Buffer>(raw.length);
  let at = bytes.byteOffset;
  for (let i = 0; i < raw.length; i++) {
    const n = raw[i]!.length;
    out[i] = new FastBuffer(bytes.buffer, at, n);
    at += n;
  }
  return out;
}

/** undici's margin below the upstream's `keep-alive: timeout=N`: a request sent just as the upstream closes would be lost. */
const KEEP_ALIVE_MARGIN_MS = 2000;
const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/;

/**
 * How long the connection may idle after a response with this `keep-alive` header value (its
 * timeout less the margin, never longer than `configuredMs`; 0: no limit); -1: not at all.
 */
export function idleTimeoutFor(hint: string | undefined, configuredMs: number): number {
  const m = hint === undefined ? null : KEEP_ALIVE_TIMEOUT.exec(hint);
  if (m === null) return configuredMs;
  const ms = Number(m[1]) * 1000 - KEEP_ALIVE_MARGIN_MS;
  if (ms <= 0) return -1;
  return configuredMs === 0 ? ms : Math.min(ms, configuredMs);
}
