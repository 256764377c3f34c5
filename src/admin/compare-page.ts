// The comparison report as one server-rendered page, Diffy's dashboard in plain HTML: per policy
// "N differing of M", endpoints by diff rate, each endpoint's fields as a tree of their dotted
// paths with counts, noise and verdict coloured in Diffy's bands (under 0.1 %, 5 %, 50 %), the
// ignore rules with mark-as-noise and unmark, export and reset; a chosen field's sample below.
import { compilePathPattern } from '../compare/path-pattern';
import type { LatencyReport } from '../compare/latency';
import type { CompareReport, EndpointReport, FieldReport, PolicyReport } from '../compare/report-types';
import { COMPARE_OUTCOMES } from '../compare/types';
import { COMPARE_CSS, COMPARE_SCRIPT } from './compare-page-assets';
import { type SampleSelection, renderSampleView } from './compare-sample-view';
import { Html, href, html } from './html';

export type { SampleSelection } from './compare-sample-view';

const PAGE = '/mirror/compare';

export function renderComparePage(report: CompareReport, selection: SampleSelection | null, nonce: string, fleet = false): string {
  const back = selection === null ? PAGE : href(PAGE, { policy: selection.policy, endpoint: selection.endpoint, field: selection.field });
  const m = report.memory;
  const policies = report.policies.length === 0 ? html`<p class="muted">No policy compares responses.</p>` : report.policies.map((p) => policySection(p, back));
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sidemirror: response comparison</title>
<style nonce="${nonce}">${raw(COMPARE_CSS)}</style></head>
<body>
<header><h1>Response comparison${fleet ? ' (fleet)' : ''}</h1>
<p class="muted">${fleet ? html`Counts summed over every sidecar publishing to Redis (policies with <code>fleet</code>); samples are this sidecar's own. <a href="${PAGE}">This sidecar only</a>` : html`This sidecar's counts. <a href="${href(PAGE, { scope: 'fleet' })}">Fleet view</a>`}</p>
<p class="muted">Store: ${m.bytes} of ${m.max_bytes} bytes (estimated), ${m.evicted} evicted · <a href="${href(PAGE, { format: 'json' })}">JSON</a> · <a href="${PAGE}">refresh</a></p>
<p id="status" role="status"></p></header>
${selection === null ? '' : renderSampleView(selection, PAGE)}
${policies}
<script nonce="${nonce}">${raw(COMPARE_SCRIPT)}</script>
</body></html>
`.text;
}

/** Our own constant text (style, script), never a value from a response. */
function raw(s: string): Html {
  return new Html(s);
}

function policySection(p: PolicyReport, back: string): Html {
  const endpoints = p.endpoints.length === 0 ? html`<p class="muted">No compared request yet.</p>` : p.endpoints.map((ep) => endpointSection(p, ep, back));
  return html`<section class="policy" data-policy="${p.name}">
<h2>Policy <code>${p.name}</code></h2>
<p class="summary ${band(p.diff_rate)}"><strong>${p.outcomes.diff} differing</strong> of ${p.compared} compared (${pct(p.diff_rate)}) · ${p.outcomes.noise_only} noise only · ${p.outcomes.match} matching</p>
${outcomeTable(p)}
<p>${p.reference ? 'A reference shadow measures noise.' : html`<span class="muted">No reference shadow: noise is not measured, every difference counts unless a rule ignores it.</span>`}
 Thresholds: relative &gt; ${p.thresholds.relative} %, absolute &gt; ${p.thresholds.absolute} % of requests.
 Counting since ${p.since}${p.last_reset === null ? '' : html` (last reset ${p.last_reset})`}.</p>
${latencyTable(p)}
${rulesBlock(p, back)}
<div class="actions"><a href="${href(`${PAGE}/export`, { policy: p.name })}">export YAML</a>
 · ${postForm('reset', { policy: p.name, back }, 'reset', 'reset counts and samples')}
 · <span class="muted">store ${p.memory.bytes} of ${p.memory.max_bytes} bytes, ${p.memory.evicted_fields} fields and ${p.memory.evicted_endpoints} endpoints evicted</span></div>
${endpoints}
</section>`;
}

function outcomeTable(p: PolicyReport): Html {
  const head = COMPARE_OUTCOMES.map((o) => html`<th>${o}</th>`);
  const cells = COMPARE_OUTCOMES.map((o) => html`<td data-outcome="${o}">${p.outcomes[o]}</td>`);
  return html`<table class="outcomes"><tr>${head}</tr><tr>${cells}</tr></table>`;
}

function latencyTable(p: PolicyReport): Html {
  const rows: Array<[string, LatencyReport]> = [['primary', p.latency.primary], ['candidate', p.latency.candidate]];
  if (p.latency.reference) rows.push(['reference', p.latency.reference]);
  const tr = rows.map(([role, l]) => html`<tr><td>${role}</td><td>${l.count}</td><td>${l.mean}</td><td>${l.p50}</td><td>${l.p99}</td><td>${l.max}</td></tr>`);
  return html`<table class="latency"><tr><th>latency (ms)</th><th>count</th><th>mean</th><th>p50 ≤</th><th>p99 ≤</th><th>max</th></tr>${tr}</table>`;
}

function rulesBlock(p: PolicyReport, back: string): Html {
  const config = p.rules.config.map((r) => html`<li><code>${r}</code> <span class="muted">(config)</span></li>`);
  const runtime = p.rules.runtime.map((r) => html`<li data-rule="${r}"><code>${r}</code> <span class="muted">(marked at run time)</span> ${postForm('unnoise', { policy: p.name, path: r, back }, 'unmark', 'unmark')}</li>`);
  const none = config.length + runtime.length === 0 ? html`<li class="muted">none</li>` : '';
  return html`<div class="rules"><h3>Ignore rules</h3><ul>${config}${runtime}${none}</ul></div>`;
}

function endpointSection(p: PolicyReport, ep: EndpointReport, back: string): Html {
  return html`<section class="endpoint" data-endpoint="${ep.name}">
<h3>Endpoint <code>${ep.name}</code></h3>
<p class="summary ${band(ep.diff_rate)}"><strong>${ep.diffs} differing</strong> of ${ep.total} (${pct(ep.diff_rate)}) · ${ep.noise_only} noise only · fields differing beyond noise: ${ep.diff_fields}</p>
${ep.fields.length === 0 ? html`<p class="muted">No differing field.</p>` : fieldTree(p, ep, back)}
</section>`;
}

interface TreeNode {
  readonly label: string;
  readonly children: Map<string, TreeNode>;
  readonly fields: FieldReport[];
}

/** The fields grouped by their dotted paths, children in the order of the fields (diff first). */
function fieldTree(p: PolicyReport, ep: EndpointReport, back: string): Html {
  const root: TreeNode = { label: '', children: new Map(), fields: [] };
  for (const f of ep.fields) {
    let at = root;
    for (const seg of segmentsOf(f.field)) {
      let next = at.children.get(seg);
      if (next === undefined) at.children.set(seg, (next = { label: seg, children: new Map(), fields: [] }));
      at = next;
    }
    at.fields.push(f);
  }
  const render = (n: TreeNode): Html =>
    html`<li><span class="seg">${n.label}</span>${n.fields.map((f) => fieldRow(p, ep, f, back))}${n.children.size > 0 ? html`<ul>${[...n.children.values()].map(render)}</ul>` : ''}</li>`;
  return html`<ul class="tree">${[...root.children.values()].map(render)}</ul>`;
}

/** `status` → [status]; `header.x-id` → [header, x-id]; `body.items[*].id` → [body, items, [*], id]. */
export function segmentsOf(field: string): string[] {
  if (field.startsWith('header.')) return ['header', field.slice('header.'.length)];
  if (!field.startsWith('body')) return [field];
  return ['body', ...(field.slice(4).match(/\.[^.[]*|\[\*\]/g) ?? []).map((s) => (s.startsWith('.') ? s.slice(1) : s))];
}

function fieldRow(p: PolicyReport, ep: EndpointReport, f: FieldReport, back: string): Html {
  const cls = f.verdict === 'diff' ? `verdict-diff ${band(f.diff_pct)}` : 'verdict-noise';
  const reason = f.reason === 'ignored' ? `ignored (${f.source ?? 'rule'})` : 'measured';
  const link = href(PAGE, { policy: p.name, endpoint: ep.name, field: f.path });
  const samples = f.samples > 0 ? html`<a class="samples" href="${link}#sample">${f.samples} sample${f.samples === 1 ? '' : 's'}</a>` : html`<span class="muted">no samples</span>`;
  return html`<div class="field ${cls}" data-path="${f.path}">
<span class="kind diff-${f.kind}">${f.kind}</span>
<span class="verdict">${f.verdict}</span>
<span>${f.diffs} diffs (${pct(f.diff_pct)})</span>
<span>noise ${f.noise} (${pct(f.noise_pct)})</span>
<span class="muted">relative ${pct(f.relative)}, absolute ${pct(f.absolute)}</span>
<span class="reason">${reason}</span>
${samples}
${ruleButton(p, f, back)}
</div>`;
}

function ruleButton(p: PolicyReport, f: FieldReport, back: string): Html | string {
  if (f.reason !== 'ignored') return postForm('noise', { policy: p.name, path: f.path, back }, 'mark-noise', 'mark as noise');
  if (f.source !== 'runtime') return '';
  // The runtime rule that covers this field (it may name a parent: `body.meta` covers `body.meta.ts`).
  const rule = p.rules.runtime.find((r) => {
    const c = compilePathPattern(r);
    return typeof c !== 'string' && c.matches(f.field);
  });
  return rule === undefined ? '' : postForm('unnoise', { policy: p.name, path: rule, back }, 'unmark', 'unmark');
}

function postForm(action: string, fields: Readonly<Record<string, string>>, cls: string, label: string): Html {
  const inputs = Object.entries(fields).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`);
  return html`<form method="post" action="${PAGE}/${action}" data-post>${inputs}<button type="submit" class="${cls}">${label}</button></form>`;
}

/** Diffy's colours: under 0.1 % perfect, under 5 % almost, under 50 % neutral, else poor. */
export function band(percent: number): string {
  return percent < 0.1 ? 'band-perfect' : percent < 5 ? 'band-almost' : percent < 50 ? 'band-neutral' : 'band-poor';
}

function pct(v: number): string {
  return `${Number(v.toFixed(v < 1 ? 3 : 1))} %`;
}
