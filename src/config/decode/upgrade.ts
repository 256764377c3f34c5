import { type Ctx, type Pb, at, fail } from './common';

// upgrade_type, as both the connection manager's and a route's upgrade_configs name it.

const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * An upgrade_type as written, or null when it cannot be used (reported when `report`). CONNECT
 * is Envoy's tunnelling, not an Upgrade header, and sidemirror does not do it.
 */
export function upgradeType(u: Pb, ctx: Ctx, report = true): string | null {
  const type = String(u.upgrade_type ?? '');
  const problem = !type ? 'upgrade_type is required'
    : !HTTP_TOKEN.test(type) ? `"${type}" is not an HTTP token`
    : type.toLowerCase() === 'connect' ? 'CONNECT is not supported by sidemirror'
    : null;
  if (problem && report) fail(at(ctx, 'upgrade_type'), problem);
  return problem ? null : type;
}
