// What groups compared requests: the route's name when it has one, else the method and the
// request's path with its identifiers replaced, so /orders/17 and /orders/18 count together
// (Diffy needed a Canonical-Resource header for this; a path per URL would give each a sample of one).

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]{8,}$/i;
const NUMBER = /^\d+$/;
const MIXED_ID = /^(?=.*\d)[A-Za-z0-9_-]{16,}$/;

/** `GET /orders/{n}` for GET /orders/17?x=1; the route's name instead when it has one. */
export function endpointName(routeName: string, method: string, path: string): string {
  if (routeName) return routeName;
  const q = path.search(/[?#]/);
  const bare = q < 0 ? path : path.slice(0, q);
  return `${method} ${templatePath(bare)}`;
}

export function templatePath(path: string): string {
  const out = path.split('/').map((seg) => {
    if (seg === '') return seg;
    if (NUMBER.test(seg)) return '{n}';
    if (UUID.test(seg)) return '{uuid}';
    if (HEX.test(seg) && /\d/.test(seg)) return '{hex}';
    if (MIXED_ID.test(seg) || seg.length > 48) return '{id}';
    return seg;
  });
  // Deep paths are cut: a client cannot make one endpoint name arbitrarily long.
  const joined = out.slice(0, 9).join('/');
  return joined.length > 200 ? joined.slice(0, 200) : joined;
}
