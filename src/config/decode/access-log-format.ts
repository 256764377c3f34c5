import { parseFormat } from '../../access-log/parse';
import type { FormatToken, JsonTemplate, LogFormat } from '../access-log-model';
import { type Ctx, type Pb, at, atKey, fail } from './common';
import { dataSourceText, decodeDataSource } from './data-source';

// core.v3.SubstitutionFormatString (and FileAccessLog's deprecated format fields) into a parsed
// LogFormat: every command operator is checked here, so a typo refuses the config by path.

/** What the shadow logger allows besides Envoy's operators. */
export interface FormatContext {
  readonly shadow: boolean;
}

export function decodeSubstitutionFormat(f: Pb, ctx: Ctx, fc: FormatContext): LogFormat | null {
  const omitEmptyValues = Boolean(f.omit_empty_values);
  // content_type is read by Envoy's local reply formatting only, never by an access logger: nothing to do here either.
  if (f.text_format !== undefined) return text(String(f.text_format), omitEmptyValues, at(ctx, 'text_format'), fc);
  if (f.json_format !== undefined) return json(f.json_format as Pb, omitEmptyValues, true, at(ctx, 'json_format'), fc);
  if (f.text_format_source !== undefined) {
    const sctx = at(ctx, 'text_format_source');
    const source = decodeDataSource(f.text_format_source as Pb, sctx, true);
    const body = dataSourceText(source, sctx);
    // null: a file the control plane does not read (it checks only the shape), or a failure already reported.
    if (body === null) return { kind: 'text', tokens: [], omitEmptyValues };
    return text(body, omitEmptyValues, at(sctx, source?.kind === 'filename' ? 'filename' : 'inline_string'), fc);
  }
  fail(ctx, 'one of text_format, json_format or text_format_source is required');
  return null;
}

/** A text template. */
export function text(format: string, omitEmptyValues: boolean, ctx: Ctx, fc: FormatContext): LogFormat {
  return { kind: 'text', tokens: tokens(format, ctx, fc), omitEmptyValues };
}

/** A JSON object template; `typed` false for FileAccessLog's deprecated json_format (strings only). */
export function json(struct: Pb, omitEmptyValues: boolean, typed: boolean, ctx: Ctx, fc: FormatContext): LogFormat {
  return { kind: 'json', root: structTemplate(struct, ctx, fc), omitEmptyValues, typed };
}

function tokens(format: string, ctx: Ctx, fc: FormatContext): FormatToken[] {
  const parsed = parseFormat(format, { shadow: fc.shadow });
  if (parsed.ok) return parsed.tokens;
  fail(ctx, parsed.error);
  return [];
}

// protobufjs declares google.protobuf.Struct/Value with camelCase field names even under keepCase.
const field = (v: Pb, snake: string, camel: string): unknown => v[camel] ?? v[snake];

function structTemplate(struct: Pb, ctx: Ctx, fc: FormatContext): JsonTemplate {
  const fields = Object.entries((struct.fields ?? {}) as Pb).map(([k, v]) => [k, valueTemplate(v as Pb, atKey(ctx, k), fc)] as const);
  return { kind: 'object', fields };
}

function valueTemplate(v: Pb, ctx: Ctx, fc: FormatContext): JsonTemplate {
  const s = field(v, 'string_value', 'stringValue');
  if (typeof s === 'string') return s.includes('%') ? { kind: 'template', tokens: tokens(s, ctx, fc) } : { kind: 'constant', value: s };
  const n = field(v, 'number_value', 'numberValue');
  if (typeof n === 'number') return { kind: 'constant', value: n };
  const b = field(v, 'bool_value', 'boolValue');
  if (typeof b === 'boolean') return { kind: 'constant', value: b };
  const nested = field(v, 'struct_value', 'structValue') as Pb | undefined;
  if (nested) return structTemplate(nested, ctx, fc);
  const list = field(v, 'list_value', 'listValue') as Pb | undefined;
  if (list) {
    const values = ((list.values ?? []) as Pb[]);
    return { kind: 'list', items: values.map((item, i) => valueTemplate(item, { ...ctx, path: `${ctx.path}[${i}]` }, fc)) };
  }
  return { kind: 'constant', value: null };
}
