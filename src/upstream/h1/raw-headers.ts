// Response header lines as the pool's handlers get them. Node's parser gives latin1 strings;
// undici's handlers (and sidemirror's, written for undici) take Buffers, each line as it came.

/** `raw` as Buffers, one per name and value, in order. */
export function rawHeaders(raw: readonly string[]): Buffer[] {
  const out = new Array<Buffer>(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = Buffer.from(raw[i]!, 'latin1');
  return out;
}
