// Cutting text for samples without splitting a character: a cut UTF-8 sequence or a lone surrogate
// would render as garbage and, re-encoded, no longer be the bytes the upstream sent.

/** The longest prefix of `buf` of at most `max` bytes that ends on a UTF-8 character boundary. */
export function utf8Prefix(buf: Buffer, max: number): Buffer {
  if (buf.length <= max) return buf;
  let end = Math.max(0, max);
  // A continuation byte (10xxxxxx) at the cut belongs to the character before it: back up to its lead.
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end);
}

/** `buf` without a trailing UTF-8 sequence that a capture bound cut short. */
export function withoutCutTail(buf: Buffer): Buffer {
  for (let back = 1; back <= Math.min(4, buf.length); back++) {
    const b = buf[buf.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation: keep looking for the lead byte
    const need = b < 0x80 ? 1 : (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 ? 4 : 1;
    return need > back ? buf.subarray(0, buf.length - back) : buf;
  }
  return buf;
}

const strict = new TextDecoder('utf-8', { fatal: true });

/** The bytes as text, or null when they are not UTF-8. */
export function decodeUtf8(buf: Buffer): string | null {
  try {
    return strict.decode(buf);
  } catch {
    return null;
  }
}

/** `s` cut to at most `max` UTF-8 bytes on a character boundary, and whether it was cut. */
export function cutUtf8(s: string, max: number): { text: string; cut: boolean } {
  // Cheap exit: no string of n UTF-16 units needs more than 3n UTF-8 bytes.
  if (s.length * 3 <= max) return { text: s, cut: false };
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= max) return { text: s, cut: false };
  return { text: utf8Prefix(buf, max).toString('utf8'), cut: true };
}

/** `s` cut to at most `max` UTF-16 units without splitting a surrogate pair; '…' marks a cut. */
export function cutChars(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max;
  const last = s.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${s.slice(0, end)}…`;
}
