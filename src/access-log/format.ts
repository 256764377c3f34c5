import type { FormatToken, JsonTemplate, LogFormat } from '../config/access-log-model';
import type { LogEntry } from './entry';
import { type Value, type ValueOf, compileOperator } from './operators';

// A parsed format compiled into one function from a log entry to its line. Text: each missing
// value is "-" (nothing with omit_empty_values); the template says where lines end. JSON, as
// Envoy's JSON formatter writes it: keys sorted, one object per line; a value that is one
// operator keeps its type (numbers stay numbers, a missing value is null, and is left out with
// omit_empty_values); a value mixing text and operators is a string.

export type LineFormatter = (e: LogEntry) => string;

type Piece = string | ValueOf;

function pieces(tokens: readonly FormatToken[]): Piece[] {
  return tokens.map((t) => (t.kind === 'text' ? t.text : compileOperator(t)));
}

function renderText(parts: readonly Piece[], e: LogEntry, missing: string): string {
  let out = '';
  for (const p of parts) {
    if (typeof p === 'string') out += p;
    else {
      const v = p(e);
      out += v === null ? missing : String(v);
    }
  }
  return out;
}

export function compileFormat(format: LogFormat): LineFormatter {
  if (format.kind === 'text') {
    const parts = pieces(format.tokens);
    const missing = format.omitEmptyValues ? '' : '-';
    return (e) => renderText(parts, e, missing);
  }
  const node = compileJson(format.root, format.typed, format.omitEmptyValues);
  return (e) => `${node(e) ?? '{}'}\n`;
}

/** A JSON node: its serialized text, or undefined when omit_empty_values leaves it out. */
type JsonNode = (e: LogEntry) => string | undefined;

function compileJson(t: JsonTemplate, typed: boolean, omit: boolean): JsonNode {
  switch (t.kind) {
    case 'constant': {
      const text = JSON.stringify(t.value);
      // A literal null is dropped with omit_empty_values, as any empty value.
      return t.value === null && omit ? () => undefined : () => text;
    }
    case 'object': {
      const fields = [...t.fields]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [JSON.stringify(k), compileJson(v, typed, omit)] as const);
      return (e) => {
        const parts: string[] = [];
        for (const [key, node] of fields) {
          const v = node(e);
          if (v !== undefined) parts.push(`${key}:${v}`);
        }
        // An object whose every field was left out is left out too (Envoy's omit_empty_values).
        return parts.length === 0 && omit && fields.length > 0 ? undefined : `{${parts.join(',')}}`;
      };
    }
    case 'list': {
      const items = t.items.map((i) => compileJson(i, typed, omit));
      return (e) => `[${items.map((n) => n(e)).filter((v) => v !== undefined).join(',')}]`;
    }
    case 'template':
      return compileTemplate(t.tokens, typed, omit);
  }
}

function compileTemplate(tokens: readonly FormatToken[], typed: boolean, omit: boolean): JsonNode {
  const parts = pieces(tokens);
  const single = parts.length === 1 && typeof parts[0] !== 'string' ? parts[0]! : null;
  if (single === null) {
    const missing = omit ? '' : '-';
    return (e) => JSON.stringify(renderText(parts, e, missing));
  }
  return (e) => {
    const v: Value = single(e);
    if (v === null) return omit ? undefined : typed ? 'null' : '"-"';
    return typed && typeof v === 'number' ? String(v) : JSON.stringify(String(v));
  };
}
