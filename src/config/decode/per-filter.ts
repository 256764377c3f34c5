import { perRouteFilterKind } from '../../http/filters/registry';
import type { PerFilterConfig } from '../filter-model';
import type { ExtMirrorPolicy, TypedConfig } from '../model';
import { type Ctx, type Pb, at, atKey, fail, typeUrlName, unpackAny } from './common';
import { MIRROR_PER_ROUTE_TYPE, decodeMirrorPerRoute } from './mirror-filter';

const FILTER_CONFIG_TYPE = 'envoy.config.route.v3.FilterConfig';

/** What a route, virtual host or route configuration says to its HTTP filters, by filter name. */
export interface PerFilterSettings {
  readonly perFilter: ReadonlyMap<string, PerFilterConfig>;
  /** sidemirror mirror policies by the name of the filter they are configured for. */
  readonly extMirrorPolicies: ReadonlyMap<string, readonly ExtMirrorPolicy[]>;
}

/**
 * typed_per_filter_config: each value decoded by the filter that reads its message type, a
 * FilterConfig wrapper unwrapped (its `disabled` kept, its `is_optional` honoured). A type no
 * filter reads is an error unless marked optional, as in Envoy.
 */
export function decodePerFilterConfig(obj: Pb | undefined, ctx: Ctx): PerFilterSettings {
  const perFilter = new Map<string, PerFilterConfig>();
  const extMirrorPolicies = new Map<string, ExtMirrorPolicy[]>();
  for (const [name, any] of Object.entries(obj ?? {})) {
    const vctx = atKey(ctx, name);
    const outer = unpackAny(any as Pb, vctx);
    if (!outer) continue;
    let inner: TypedConfig | null = outer;
    let optional = false;
    let icx = vctx;
    if (typeUrlName(outer.typeUrl) === FILTER_CONFIG_TYPE) {
      const w = outer.value as Pb;
      optional = Boolean(w.is_optional);
      if (w.disabled) {
        perFilter.set(name, { disabled: true, settings: undefined });
        continue;
      }
      icx = at(vctx, 'config');
      inner = unpackAny(w.config as Pb | undefined, icx, optional);
      if (!inner) {
        if (!w.config && !optional) fail(icx, 'config is required unless disabled is true');
        continue;
      }
    }
    const type = typeUrlName(inner.typeUrl);
    if (type === MIRROR_PER_ROUTE_TYPE) {
      extMirrorPolicies.set(name, decodeMirrorPerRoute(inner.value as Pb, icx));
      continue;
    }
    const kind = perRouteFilterKind(type);
    if (!kind?.decodePerRoute) {
      if (!optional) fail(icx, `"${inner.typeUrl}" is not a per-route config of any HTTP filter sidemirror runs`);
      continue;
    }
    perFilter.set(name, { disabled: false, settings: kind.decodePerRoute(inner.value as Pb, icx, type) });
  }
  return { perFilter, extMirrorPolicies };
}
