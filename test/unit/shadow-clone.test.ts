// The shadow's headers: a copy of the primary's with Host suffixed, x-envoy-internal and the
// proxy's address in XFF; the primary's own map is never changed, and header names that are
// also Object.prototype members stay plain headers in the copy.
import { mapFromRaw } from '../../src/http/headers';
import { shadowHeaders } from '../../src/shadow/clone';

const ENVOY = { hostRewriteLiteral: null, disableShadowHostSuffixAppend: false, requestHeadersMutations: [] };
const same = (v: string): string => v;

test('Host suffixed, x-envoy-internal and XFF added, the primary map left as it was', () => {
  const primary = mapFromRaw(['Host', 'shop:8080', 'X-Forwarded-For', '10.0.0.1', 'Accept', '*/*']);
  const before = { ...primary };
  const shadow = shadowHeaders(primary, ENVOY, '127.0.0.2', same);
  expect(shadow).toEqual({ host: 'shop-shadow:8080', 'x-forwarded-for': '10.0.0.1,127.0.0.2', accept: '*/*', 'x-envoy-internal': 'true' });
  expect(primary).toEqual(before);
  expect(Object.getPrototypeOf(shadow)).toBe(Object.prototype);
});

test('headers named __proto__ and constructor are copied as headers, never as the prototype', () => {
  const primary = mapFromRaw(['host', 'shop', '__proto__', 'p1', '__proto__', 'p2', 'constructor', 'c']);
  const shadow = shadowHeaders(primary, ENVOY, '127.0.0.2', same);
  expect(Object.getPrototypeOf(shadow)).toBe(Object.prototype);
  expect(Object.entries(shadow)).toEqual([
    ['host', 'shop-shadow'], ['__proto__', ['p1', 'p2']], ['constructor', 'c'], ['x-envoy-internal', 'true'], ['x-forwarded-for', '127.0.0.2'],
  ]);
  const plain = shadowHeaders(mapFromRaw(['host', 'shop', 'constructor', 'c']), ENVOY, '127.0.0.2', same);
  expect(Object.getPrototypeOf(plain)).toBe(Object.prototype);
  expect(Object.hasOwn(plain, 'constructor') && plain.constructor).toBe('c');
});
