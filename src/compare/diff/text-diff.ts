// Text bodies are compared as UTF-8 lines; the difference shows the first line that differs on
// each side. Lines are found on the bytes (a 0x0A never sits inside a UTF-8 sequence), so only the
// two shown lines are decoded. A line keeps its "\n" (and "\r"), so a changed line ending shows.
import { MAX_VALUE_CHARS, shorten } from './json-render';

// A minified body is one long line: past this many bytes before the first differing byte, the
// shown text starts a little before that byte instead of at the line's start.
const LEAD_BYTES = 40;

/** Each side's first differing line as a JSON string; null on a side that has ended there (or when no byte differs). */
export function firstDifferingLine(a: Buffer, b: Buffer): { primary: string | null; other: string | null } {
  const at = firstDifferingByte(a, b);
  if (at < 0) return { primary: null, other: null };
  const lineStart = at === 0 ? 0 : a.lastIndexOf(0x0a, at - 1) + 1;
  const from = at - lineStart > LEAD_BYTES + MAX_VALUE_CHARS / 2 ? charStart(a, at - LEAD_BYTES) : lineStart;
  return { primary: lineFrom(a, from, from > lineStart), other: lineFrom(b, from, from > lineStart) };
}

/** The first offset where the buffers differ (the shorter's length when it is a prefix); -1 when equal. */
export function firstDifferingByte(a: Buffer, b: Buffer): number {
  const common = Math.min(a.length, b.length);
  // Equal 4 KiB blocks are skipped with one native compare each.
  const BLOCK = 4096;
  let i = 0;
  while (i + BLOCK <= common && a.compare(b, i, i + BLOCK, i, i + BLOCK) === 0) i += BLOCK;
  for (; i < common; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : common;
}

function lineFrom(buf: Buffer, from: number, cutBefore: boolean): string | null {
  if (from >= buf.length) return null;
  const newline = buf.indexOf(0x0a, from);
  // Decode no more than the value can show: 4 bytes per character at most.
  const end = Math.min(newline < 0 ? buf.length : newline + 1, from + 4 * MAX_VALUE_CHARS + 4);
  const text = buf.toString('utf8', from, end);
  return shorten(JSON.stringify(cutBefore ? `…${text}` : text));
}

// Back up to the first byte of a UTF-8 sequence (continuation bytes are 10xxxxxx).
function charStart(buf: Buffer, at: number): number {
  let i = at;
  while (i > 0 && (buf[i] & 0xc0) === 0x80) i--;
  return i;
}
