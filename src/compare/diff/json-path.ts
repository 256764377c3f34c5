// Path segments for object keys. The counting path is what results are counted under, so it must
// stay bounded: data-like keys (ids, dates, anything not PLAIN_KEY) and every key of a big object
// become `*`. The exact path is for samples and keeps every key, quoted when not plain.
import { PLAIN_KEY } from '../path-pattern';

/** Objects with more keys than this are maps: all their keys count as `*`. */
export const MAP_LIKE_KEYS = 50;

export function isMapLike(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  return a.size > MAP_LIKE_KEYS || b.size > MAP_LIKE_KEYS;
}

export function countingKeySegment(key: string, mapLike: boolean): string {
  return !mapLike && PLAIN_KEY.test(key) ? `.${key}` : '.*';
}

export function exactKeySegment(key: string): string {
  return PLAIN_KEY.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/**
 * The counting path of an exact path with each plain key kept as itself, whatever the size of
 * its object: `body.prices.USD` (counted `body.prices.*` when `prices` is map-like),
 * `body.items[3]["a b"]` → `body.items[*].*`. What a redaction rule is matched against, so a rule
 * naming a key reaches it inside a map-like object too. Paths other than `body…` are returned as
 * they are.
 */
export function keyedPath(exact: string): string {
  if (!exact.startsWith('body')) return exact;
  let out = 'body';
  let i = 4;
  while (i < exact.length) {
    if (exact[i] === '.') {
      let j = i + 1;
      while (j < exact.length && exact[j] !== '.' && exact[j] !== '[') j++;
      out += exact.slice(i, j);
      i = j;
    } else if (exact[i + 1] === '"') {
      // A quoted key (never a plain one): `["…"]`, its quotes and backslashes escaped.
      let j = i + 2;
      while (j < exact.length && exact[j] !== '"') j += exact[j] === '\\' ? 2 : 1;
      out += '.*';
      i = j + 2;
    } else {
      const close = exact.indexOf(']', i);
      out += '[*]';
      i = close < 0 ? exact.length : close + 1;
    }
  }
  return out;
}
