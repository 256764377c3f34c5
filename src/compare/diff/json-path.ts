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
