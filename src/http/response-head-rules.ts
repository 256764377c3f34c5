import type { HttpConnectionManager } from '../config/model';
import type { CompiledRoute, RouteTable } from '../router/route-table';
import { applyResponseHeaderEdits } from '../router/router';
import type { HeaderMap } from './headers';

/**
 * What the connection manager and router do to an upstream's response head: route and virtual
 * host edits, the server header, the request id echo, x-envoy-* suppression.
 */
export class ResponseHeadRules {
  constructor(
    private readonly hcm: HttpConnectionManager,
    private readonly suppressEnvoyHeaders: boolean,
  ) {}

  /** The slow path, for routes with response edits: `out` is the upstream's map, hop-by-hop already gone. */
  apply(out: HeaderMap, route: CompiledRoute, table: RouteTable, format: (v: string) => string, request: HeaderMap): HeaderMap {
    applyResponseHeaderEdits(route, out, table.config, format);
    this.#serverHeader(out);
    if (this.hcm.alwaysSetRequestIdInResponse && request['x-request-id'] !== undefined) out['x-request-id'] = request['x-request-id'];
    if (this.suppressEnvoyHeaders) delete out['x-envoy-upstream-service-time'];
    return out;
  }

  /** No route edits, no request id echo, no header suppression: the raw list can go as it is. */
  plain(route: CompiledRoute): boolean {
    const r = route.route;
    const v = route.vhost;
    return !this.hcm.alwaysSetRequestIdInResponse && !this.suppressEnvoyHeaders && this.hcm.serverHeaderTransformation !== 'APPEND_IF_ABSENT' &&
      r.responseHeadersToAdd.length === 0 && r.responseHeadersToRemove.length === 0 && v.responseHeadersToAdd.length === 0 && v.responseHeadersToRemove.length === 0;
  }

  /** The server header we write over the upstream's, or null to pass the upstream's through. */
  serverOverride(): string | null {
    return this.hcm.serverHeaderTransformation === 'OVERWRITE' ? this.hcm.serverName : null;
  }

  #serverHeader(out: HeaderMap): void {
    const t = this.hcm.serverHeaderTransformation;
    if (t === 'OVERWRITE' || (t === 'APPEND_IF_ABSENT' && out.server === undefined)) out.server = this.hcm.serverName;
  }
}
