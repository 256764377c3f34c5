// One sample, server-rendered: the request, what differed, and the primary, candidate and
// reference side by side with the differing places marked (class `diff diff-<kind>`, and
// `data-exact-path`). JSON bodies are re-laid out so a place can be marked inside them.
import { PLAIN_KEY } from '../compare/path-pattern';
import type { StoredBody } from '../compare/redact';
import type { SamplesReport } from '../compare/report-types';
import type { Sample, StoredResponse } from '../compare/sample';
import type { DiffKind } from '../compare/types';
import { type Html, href, html } from './html';

export interface SampleSelection {
  readonly policy: string;
  readonly endpoint: string;
  readonly field: string;
  /** null: the field is not held (evicted, reset, never seen). */
  readonly samples: SamplesReport | null;
  /** Which sample to show; null or unknown: the newest. */
  readonly sampleId: number | null;
}

/** Marked-up JSON stops here; deeper bodies are shown as their text. */
const MAX_RENDER_DEPTH = 64;

export function renderSampleView(sel: SampleSelection, page: string): Html {
  const list = sel.samples?.samples ?? [];
  const sample = list.find((s) => s.id === sel.sampleId) ?? list[0];
  const title = html`<h2>Samples of <code>${sel.field}</code> at <code>${sel.endpoint}</code> (policy <code>${sel.policy}</code>)</h2>`;
  const close = html`<a href="${page}">close</a>`;
  if (sample === undefined) {
    const why = sel.samples === null ? 'this field is not held (never seen, evicted or reset)' : 'no sample kept: its differences were noise in their requests, or samples are off';
    return html`<section class="sample" id="sample">${title}<p class="muted">${why}. ${close}</p></section>`;
  }
  const others = list.map((s) =>
    s.id === sample.id
      ? html`<strong>#${s.id}</strong>`
      : html`<a href="${href(page, { policy: sel.policy, endpoint: sel.endpoint, field: sel.field, sample: s.id })}#sample">#${s.id}</a>`,
  );
  const marks = marksOf(sample);
  return html`<section class="sample" id="sample" data-sample-id="${sample.id}">
${title}
<p>Sample ${others.map((o, i) => html`${i > 0 ? ' · ' : ''}${o}`)} — recorded ${sample.time} · ${close}</p>
<h3>Request</h3>
<p class="request-line"><code>${sample.request.line}</code></p>
${headerTable(Object.entries(sample.request.headers).map(([k, v]) => [k, [v]]), new Map())}
<h3>Differences (primary vs candidate)</h3>
${differencesTable(sample, sel.field)}
<div class="sides">
${side('Primary', 'primary', sample.primary, marks)}
${side('Candidate', 'candidate', sample.candidate, marks)}
${sample.reference === null ? '' : side('Reference', 'reference', sample.reference, new Map())}
</div>
</section>`;
}

/** Exact places that differ, by kind; header and status differences under their counting path too. */
function marksOf(sample: Sample): Map<string, DiffKind> {
  const marks = new Map<string, DiffKind>();
  for (const d of sample.differences) {
    marks.set(d.exactPath, d.kind);
    if (!d.path.startsWith('body')) marks.set(d.path, d.kind);
  }
  return marks;
}

/** Every difference of the request; the chosen field's rows carry `selected`. */
function differencesTable(sample: Sample, field: string): Html {
  const rows = sample.differences.map(
    (d) => html`<tr class="diff diff-${d.kind}${`${d.path}:${d.kind}` === field ? ' selected' : ''}" data-exact-path="${d.exactPath}"><td class="mono">${d.exactPath}</td><td>${d.kind}</td><td class="mono">${value(d.primary)}</td><td class="mono">${value(d.other)}</td></tr>`,
  );
  const omitted = sample.differencesOmitted > 0 ? html`<p class="muted">${sample.differencesOmitted} more not kept.</p>` : '';
  return html`<table class="differences"><tr><th>place</th><th>kind</th><th>primary</th><th>candidate</th></tr>${rows}</table>${omitted}`;
}

function value(v: string | null): Html {
  return v === null ? html`<span class="muted">(none)</span>` : html`${v}`;
}

function side(title: string, role: string, res: StoredResponse, marks: ReadonlyMap<string, DiffKind>): Html {
  const status = marks.get('status');
  return html`<div class="side side-${role}">
<h3>${title}</h3>
<p><span class="${status ? `diff diff-${status}` : ''}" data-exact-path="${status ? 'status' : ''}">status ${res.status}</span> · ${res.durationMs} ms</p>
${headerTable(Object.entries(res.headers), marks)}
${body(res.body, marks)}
</div>`;
}

function headerTable(rows: ReadonlyArray<readonly [string, readonly string[]]>, marks: ReadonlyMap<string, DiffKind>): Html {
  if (rows.length === 0) return html`<p class="muted">no headers</p>`;
  const tr = rows.map(([name, values]) => {
    const kind = marks.get(`header.${name}`);
    const cls = kind ? `diff diff-${kind}` : '';
    return html`<tr class="${cls}" data-exact-path="${kind ? `header.${name}` : ''}"><td class="mono">${name}</td><td class="mono">${values.join(', ')}</td></tr>`;
  });
  return html`<table class="headers">${tr}</table>`;
}

function body(b: StoredBody, marks: ReadonlyMap<string, DiffKind>): Html {
  const note = b.cut ? html`<p class="muted">body: ${b.bytes} bytes, shown cut.</p>` : html`<p class="muted">body: ${b.bytes} bytes</p>`;
  const whole = marks.get('body');
  if (whole !== undefined) return html`${note}<pre class="body diff diff-${whole}" data-exact-path="body">${b.text}</pre>`;
  const laidOut = b.cut ? null : jsonLayout(b.text, marks);
  return html`${note}<pre class="body">${laidOut ?? b.text}</pre>`;
}

/** The body as indented JSON with differing places marked; null when it is not JSON this can show faithfully. */
function jsonLayout(text: string, marks: ReadonlyMap<string, DiffKind>): Html | null {
  if (text === '' || !/^\s*[[{]/.test(text)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  try {
    return node(parsed, 'body', '', marks, 0);
  } catch {
    return null; // too deep, or a number JSON.parse rounded
  }
}

function node(v: unknown, path: string, indent: string, marks: ReadonlyMap<string, DiffKind>, depth: number): Html {
  if (depth > MAX_RENDER_DEPTH) throw new Error('too deep');
  if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) throw new Error('integer past 2^53');
  if (v === null || typeof v !== 'object') return html`${JSON.stringify(v)}`;
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return html`[]`;
    const items = v.map((item, i) => html`${inner}${marked(`${path}[${i}]`, node(item, `${path}[${i}]`, inner, marks, depth + 1), marks)}`);
    return html`[\n${join(items)}\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return html`{}`;
  const items = entries.map(([k, child]) => {
    const p = PLAIN_KEY.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`;
    const at = marks.has(p) ? p : `${path}.${k}`;
    return html`${inner}${marked(at, html`${JSON.stringify(k)}: ${node(child, at, inner, marks, depth + 1)}`, marks)}`;
  });
  return html`{\n${join(items)}\n${indent}}`;
}

function marked(path: string, content: Html, marks: ReadonlyMap<string, DiffKind>): Html {
  const kind = marks.get(path);
  return kind === undefined ? content : html`<span class="diff diff-${kind}" data-exact-path="${path}">${content}</span>`;
}

function join(items: readonly Html[]): Html {
  return html`${items.map((it, i) => html`${i > 0 ? ',\n' : ''}${it}`)}`;
}
