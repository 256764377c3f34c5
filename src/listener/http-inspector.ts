import { type PrefixVerdict, sniffHttp2Preface } from './read-prefix';

/** How far Envoy's http_inspector looks for the end of the request line. */
export const HTTP_INSPECTOR_MAX_BYTES = 8192;

/**
 * Envoy's http_inspector on a plaintext connection: 'h2c' for the HTTP/2 preface, 'http/1.1' or
 * 'http/1.0' from the version at the end of the first request line, null when the bytes are not
 * HTTP (the connection goes on without an application protocol).
 */
export function inspectHttp(seen: Buffer): PrefixVerdict<string | null> {
  const h2 = sniffHttp2Preface(seen);
  if (!h2.done) return h2;
  if (h2.value === 'HTTP/2') return { done: true, value: 'h2c' };
  const eol = seen.indexOf('\n');
  if (eol < 0) return { done: false };
  const line = seen.subarray(0, eol).toString('latin1').replace(/\r$/, '');
  const m = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.([01])$/.exec(line);
  return { done: true, value: m ? `http/1.${m[1]}` : null };
}
