// Text a peer sends us (NACK error_detail, version_info) is kept and logged, so it is kept short:
// Envoy's own NACK details are a line or two; megabytes of it only fill memory and logs.

/** Longest NACK error_detail kept or logged, in UTF-8 bytes. */
export const MAX_ERROR_DETAIL_BYTES = 4096;
/** Longest client-sent version_info kept or logged, in UTF-8 bytes. */
export const MAX_CLIENT_VERSION_BYTES = 256;

/** `text` cut to `maxBytes` UTF-8 bytes, marked `… [truncated, N bytes]`; `clipped` says whether it was cut. */
export function clip(text: string, maxBytes: number): { text: string; clipped: boolean } {
  // Cheap exit: a UTF-8 string is never more than 3 bytes per UTF-16 unit.
  if (text.length * 3 <= maxBytes) return { text, clipped: false };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= maxBytes) return { text, clipped: false };
  // A cut inside a multi-byte character decodes as U+FFFD; drop it.
  const head = Buffer.from(text, 'utf8').subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '');
  return { text: `${head}… [truncated, ${bytes} bytes]`, clipped: true };
}
