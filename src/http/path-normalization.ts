// Envoy's request-path transformations (source/common/http/path_utility.cc and
// ConnectionManagerUtility::maybeNormalizePath), as pure functions over the :path string.
// Each works on the path part only; the query (from the first '?') is carried over unchanged.

export type EscapedSlashesAction = 'KEEP_UNCHANGED' | 'REJECT_REQUEST' | 'UNESCAPE_AND_REDIRECT' | 'UNESCAPE_AND_FORWARD';

export interface PathNormalizationConfig {
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
  readonly escapedSlashesAction: EscapedSlashesAction;
}

export type PathVerdict =
  | { readonly action: 'continue'; readonly path: string }
  | { readonly action: 'redirect'; readonly path: string }
  | { readonly action: 'reject' };

function splitQuery(p: string): [string, string] {
  const q = p.indexOf('?');
  return q < 0 ? [p, ''] : [p.slice(0, q), p.slice(q)];
}

/**
 * Envoy's order: a fragment is refused; escaped slashes are handled first, then RFC 3986
 * normalization, then slash merging (after normalization, so percent-encoded tricks are caught);
 * a redirect asked for by UNESCAPE_AND_REDIRECT carries the fully transformed path.
 */
export function normalizeRequestPath(path: string, config: PathNormalizationConfig): PathVerdict {
  // RFC 3986 §3.5: a fragment is never part of a request target (Envoy's http_reject_path_with_fragment).
  if (path.includes('#')) return { action: 'reject' };
  let out = path;
  let redirect = false;
  if (config.escapedSlashesAction !== 'KEEP_UNCHANGED') {
    const unescaped = unescapeSlashes(out);
    if (unescaped !== out) {
      if (config.escapedSlashesAction === 'REJECT_REQUEST') return { action: 'reject' };
      redirect = config.escapedSlashesAction === 'UNESCAPE_AND_REDIRECT';
      out = unescaped;
    }
  }
  if (config.normalizePath) {
    const canonical = canonicalPath(out);
    if (canonical === null) return { action: 'reject' };
    out = canonical;
  }
  if (config.mergeSlashes) out = mergeSlashes(out);
  return { action: redirect ? 'redirect' : 'continue', path: out };
}

/** %2F, %2f → '/' and %5C, %5c → '\' in the path part (Envoy's PathUtil::unescapeSlashes). */
export function unescapeSlashes(p: string): string {
  const [path, query] = splitQuery(p);
  if (!path.includes('%')) return p;
  return path.replace(/%2f/gi, '/').replace(/%5c/gi, '\\') + query;
}

/** Adjacent slashes become one, keeping a leading and a trailing slash (PathUtil::mergeSlashes). */
export function mergeSlashes(p: string): string {
  const [path, query] = splitQuery(p);
  if (!path.includes('//')) return p;
  const segments = path.split('/').filter((s) => s !== '');
  return `${path.startsWith('/') ? '/' : ''}${segments.join('/')}${path.endsWith('/') && segments.length > 0 ? '/' : ''}${query}`;
}

/**
 * `..;x` and `.;x` segments become `..` and `.` before canonicalization, so a server that drops
 * path parameters (Tomcat) cannot see a traversal the proxy did not (Envoy's
 * strip_dotdot_segments_with_parameters, on by default).
 */
export function stripDotSegmentParameters(p: string): string {
  const cut = p.search(/[?#]/);
  const path = cut < 0 ? p : p.slice(0, cut);
  if (!path.includes('.;')) return p;
  const segments = path.split('/').map((s) => (s.startsWith('..;') ? '..' : s.startsWith('.;') ? '.' : s));
  return segments.join('/') + (cut < 0 ? '' : p.slice(cut));
}

// How Chromium's path canonicalizer (url::CanonicalizePath, which Envoy's canonicalPath calls)
// treats each byte: kept, percent-encoded, decoded when it arrives percent-encoded, or refused.
const PASS = 0;
const ESCAPE = 1;
const UNESCAPE = 2;
const INVALID = 3;
const PATH_CHARS: Uint8Array = (() => {
  const t = new Uint8Array(256).fill(ESCAPE);
  t[0] = INVALID;
  for (const c of "!$&'()*+,/:;=@[]") t[c.charCodeAt(0)] = PASS;
  for (const c of '-_~') t[c.charCodeAt(0)] = UNESCAPE;
  for (let c = 0x30; c <= 0x39; c++) t[c] = UNESCAPE;
  for (let c = 0x41; c <= 0x5a; c++) t[c] = UNESCAPE;
  for (let c = 0x61; c <= 0x7a; c++) t[c] = UNESCAPE;
  return t;
})();

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const hex2 = (s: string, i: number): number => parseInt(s.slice(i, i + 2), 16);
const isSlash = (c: string | undefined): boolean => c === '/' || c === '\\';

/** Length of a '.' or '%2e' at i, or 0. */
function dotAt(s: string, i: number): number {
  if (s[i] === '.') return 1;
  if (s[i] === '%' && s[i + 1] === '2' && (s[i + 2] === 'e' || s[i + 2] === 'E')) return 3;
  return 0;
}

/**
 * RFC 3986 §5.2.4 dot-segment removal and §6.2.2.2 percent-encoding normalization, Chromium's
 * way: '\' is a slash; '.', '..' (also as %2e) segments are resolved, never above the root;
 * percent-encoded unreserved characters are decoded; characters a path may not hold are
 * percent-encoded; hex case is left alone. Null when the path holds a NUL (raw or %00): Envoy
 * answers 400. Works on the path part; the query is kept as it came.
 */
export function canonicalPath(p: string): string | null {
  const [path, query] = splitQuery(stripDotSegmentParameters(p));
  let out = '/';
  let ok = true;
  let lastBadPercent = -1;
  let i = isSlash(path[0]) ? 1 : 0;
  for (; i < path.length; i++) {
    const ch = path[i]!;
    const dot = dotAt(path, i);
    if (dot > 0) {
      if (!out.endsWith('/')) {
        out += '.';
        i += dot - 1;
        continue;
      }
      const after = i + dot;
      if (after === path.length || isSlash(path[after])) {
        // "." segment: dropped with the slash that follows it.
        i = after;
        continue;
      }
      const second = dotAt(path, after);
      if (second > 0 && (after + second === path.length || isSlash(path[after + second]))) {
        // ".." segment: back up over the previous segment, stopping at the root.
        const cut = out.lastIndexOf('/', out.length - 2);
        out = cut < 0 ? '/' : out.slice(0, cut + 1);
        if (lastBadPercent >= out.length) lastBadPercent = -1;
        i = after + second;
        continue;
      }
      out += '.';
      i += dot - 1;
      continue;
    }
    if (ch === '\\') {
      out += '/';
      continue;
    }
    const code = ch.charCodeAt(0);
    if (ch === '%') {
      if (i + 2 < path.length && isHex(path.charCodeAt(i + 1)) && isHex(path.charCodeAt(i + 2))) {
        const value = hex2(path, i + 1);
        const kind = PATH_CHARS[value]!;
        if (kind === UNESCAPE) {
          out += String.fromCharCode(value);
          // A decoded character right after an invalid '%' could spell a new escape ("%%32%65"):
          // the stray '%' is then escaped itself so nothing decodes twice downstream.
          if (lastBadPercent >= 0 && lastBadPercent + 3 >= out.length && /^%[0-9a-fA-F]{2}$/.test(out.slice(lastBadPercent, lastBadPercent + 3))) {
            out = `${out.slice(0, lastBadPercent)}%25${out.slice(lastBadPercent + 1)}`;
            lastBadPercent = -1;
          }
        } else {
          if (kind === INVALID) ok = false;
          out += path.slice(i, i + 3);
        }
        i += 2;
      } else {
        lastBadPercent = out.length;
        out += '%';
      }
      continue;
    }
    if (code > 0xff) {
      // Not reachable from Node's parser (latin1 bytes), but never let a wide char through raw.
      out += encodeURIComponent(ch);
      continue;
    }
    const kind = PATH_CHARS[code]!;
    if (kind === INVALID) {
      ok = false;
      out += '%00';
    } else if (kind === ESCAPE) {
      out += `%${code.toString(16).toUpperCase().padStart(2, '0')}`;
    } else {
      out += ch;
    }
  }
  return ok ? out + query : null;
}
