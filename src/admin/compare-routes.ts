// The comparison report's admin routes: the page, its JSON, samples, runtime ignore rules, reset
// and export. The POSTs go through the server's rules (POST only, foreign pages refused), and so
// do the reads: samples are production requests and responses, and the report names the
// service's endpoints and fields, so a page whose Host is not this server reads none of it.
import { randomBytes } from 'node:crypto';
import type * as http from 'node:http';
import type { CompareReport, SamplesReport } from '../compare/report-types';
import type { RuleChange } from '../compare/store';
import { renderComparePage, type SampleSelection } from './compare-page';
import { type AdminRoute, type Reply, json, requestParams, text } from './route';

/** What the routes need of the comparison results (CompareRegistry is one). */
export interface CompareSource {
  report(): CompareReport;
  samples(policy: string, endpoint: string, field: string): SamplesReport | null;
  markNoise(policy: string, path: string): RuleChange;
  unmarkNoise(policy: string, path: string): RuleChange;
  reset(policy?: string): boolean;
  exportYaml(policy: string): string | null;
  /** The fleet's sum (sidecars publishing through Redis), for ?scope=fleet; absent: this sidecar only. */
  fleetReport?(): Promise<CompareReport>;
}

export const COMPARE_PAGE = '/mirror/compare';

/** Where a form may send the browser back to: the report, with a query of visible ASCII but `\`. */
const BACK = /^\/mirror\/compare(?:\?[!-[\]-~]*)?$/;

export function compareRoutes(src: CompareSource): Array<[string, AdminRoute]> {
  return [
    [COMPARE_PAGE, { post: false, private: true, help: 'response comparison report (HTML); ?format=json, ?scope=fleet', handle: (u) => page(src, u) }],
    [`${COMPARE_PAGE}/samples`, { post: false, private: true, help: 'a field\'s samples: ?policy=&endpoint=&field=', handle: (u) => samples(src, u) }],
    [`${COMPARE_PAGE}/noise`, { post: true, private: true, help: 'POST policy=&path=: ignore a field path at run time ("mark as noise")', handle: (u, r) => ruleChange(u, r, (p, path) => src.markNoise(p, path)) }],
    [`${COMPARE_PAGE}/unnoise`, { post: true, private: true, help: 'POST policy=&path=: drop a runtime ignore rule', handle: (u, r) => ruleChange(u, r, (p, path) => src.unmarkNoise(p, path)) }],
    [`${COMPARE_PAGE}/reset`, { post: true, private: true, help: 'POST [policy=]: clear comparison counts and samples', handle: (u, r) => reset(src, u, r) }],
    [`${COMPARE_PAGE}/export`, { post: false, private: true, help: 'a policy\'s ignore rules as YAML: ?policy=', handle: (u) => exportYaml(src, u) }],
  ];
}

async function page(src: CompareSource, url: URL): Promise<Reply> {
  const fleet = url.searchParams.get('scope') === 'fleet' && src.fleetReport !== undefined;
  const report = fleet ? await src.fleetReport!() : src.report();
  if (url.searchParams.get('format') === 'json') return json(report);
  const q = url.searchParams;
  let selection: SampleSelection | null = null;
  const policy = q.get('policy');
  const endpoint = q.get('endpoint');
  const field = q.get('field');
  if (policy !== null && endpoint !== null && field !== null) {
    const id = Number(q.get('sample'));
    selection = { policy, endpoint, field, samples: src.samples(policy, endpoint, field), sampleId: Number.isSafeInteger(id) && id > 0 ? id : null };
  }
  // A fresh nonce per page: only our own inline script and style run, whatever a value smuggles in.
  const nonce = randomBytes(16).toString('base64');
  return {
    type: 'text/html; charset=UTF-8',
    headers: {
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; form-action 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'`,
      'x-content-type-options': 'nosniff',
      // same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on the page's own form posts, which the admin's origin check refuses.
      'referrer-policy': 'same-origin',
    },
    body: renderComparePage(report, selection, nonce, fleet),
  };
}

function samples(src: CompareSource, url: URL): Reply {
  const q = url.searchParams;
  const policy = q.get('policy');
  const endpoint = q.get('endpoint');
  const field = q.get('field');
  if (policy === null || endpoint === null || field === null) return text('usage: /mirror/compare/samples?policy=P&endpoint=E&field=PATH:KIND\n', 400);
  const found = src.samples(policy, endpoint, field);
  return found === null ? text(`no field "${field}" at endpoint "${endpoint}" of policy "${policy}"\n`, 404) : json(found);
}

async function ruleChange(url: URL, req: http.IncomingMessage, change: (policy: string, path: string) => RuleChange): Promise<Reply> {
  const q = await requestParams(url, req);
  const policy = q.get('policy');
  const path = q.get('path');
  if (policy === null || path === null) return text('usage: POST policy=P&path=FIELD (form or query)\n', 400);
  const r = change(policy, path);
  if (!r.ok) return text(`${r.error}\n`, 400);
  return afterChange(req, q, { ok: true, policy, rule: r.rule });
}

async function reset(src: CompareSource, url: URL, req: http.IncomingMessage): Promise<Reply> {
  const q = await requestParams(url, req);
  const policy = q.get('policy') || undefined;
  if (!src.reset(policy)) return text(`no comparing policy named "${policy ?? ''}"\n`, 404);
  return afterChange(req, q, { ok: true, reset: policy ?? 'all' });
}

/**
 * A form the browser submitted itself (no script) is sent back to the page it came from; a
 * script or curl gets JSON.
 */
function afterChange(req: http.IncomingMessage, q: URLSearchParams, result: Record<string, unknown>): Reply {
  if (!(req.headers.accept ?? '').includes('text/html')) return json(result);
  const back = q.get('back') ?? '';
  // Only back to the report itself (never an open redirect), and only in printable ASCII: the
  // page writes its query percent-encoded, and anything else could not be sent as a header.
  const location = BACK.test(back) ? back : COMPARE_PAGE;
  return { status: 303, type: 'text/plain; charset=UTF-8', headers: { location }, body: 'OK\n' };
}

function exportYaml(src: CompareSource, url: URL): Reply {
  const policy = url.searchParams.get('policy');
  if (policy === null) return text('usage: /mirror/compare/export?policy=P\n', 400);
  const yaml = src.exportYaml(policy);
  return yaml === null ? text(`no comparing policy named "${policy}"\n`, 404) : { type: 'text/yaml; charset=UTF-8', headers: { 'x-content-type-options': 'nosniff' }, body: yaml };
}
