// Bodies, cheapest first: equal hashes end it without reading a byte; a body the capture bound
// cut, or one that did not decode, is decided by its hash alone (its kept bytes are not the body);
// otherwise by format: JSON structurally, text by its first differing line, anything else as bytes.
import type { CapturedResponse, CompareRules } from '../types';
import type { DifferenceList } from './difference-list';
import { diffJson } from './json-diff';
import { type JsonParse, parseJsonBody } from './json-parse';
import { isJsonType, isTextType, mediaType } from './media-type';
import { firstDifferingLine } from './text-diff';

type BodyRules = Pick<CompareRules, 'bodyFormat' | 'unorderedArrays' | 'numberTolerance'>;

export function diffBody(primary: CapturedResponse, other: CapturedResponse, rules: BodyRules, out: DifferenceList): void {
  if (primary.bodyHash === other.bodyHash) return;
  if (!primary.bodyComplete || !other.bodyComplete || primary.decodeError || other.decodeError) {
    return out.add('body', 'changed', 'body', null, null);
  }
  switch (rules.bodyFormat) {
    case 'json':
      return forcedJson(primary.body, other.body, rules, out);
    case 'text':
      return diffText(primary.body, other.body, out);
    case 'bytes':
      return out.add('body', 'changed', 'body', null, null);
    default:
      return auto(primary, other, rules, out);
  }
}

function auto(primary: CapturedResponse, other: CapturedResponse, rules: BodyRules, out: DifferenceList): void {
  const type = mediaType(primary.headers);
  if (isJsonType(type)) {
    const a = parseJsonBody(primary.body);
    const b = a.ok ? parseJsonBody(other.body) : a;
    if (a.ok && b.ok) return diffJson(a.value, b.value, rules, out);
    // JSON that does not parse is still text: its first differing line says more than "bytes differ".
    return diffText(primary.body, other.body, out);
  }
  if (isTextType(type)) return diffText(primary.body, other.body, out);
  out.add('body', 'changed', 'body', null, null);
}

function forcedJson(primary: Buffer, other: Buffer, rules: BodyRules, out: DifferenceList): void {
  const a = parseJsonBody(primary);
  const b = parseJsonBody(other);
  if (a.ok && b.ok) return diffJson(a.value, b.value, rules, out);
  // Neither is JSON: no type differs between them, only their text.
  if (!a.ok && !b.ok) return diffText(primary, other, out);
  out.add('body', 'type', 'body', describe(a), describe(b));
}

function describe(p: JsonParse): string {
  return JSON.stringify(p.ok ? 'json' : `not json: ${p.error} at ${p.offset}`);
}

function diffText(primary: Buffer, other: Buffer, out: DifferenceList): void {
  const line = firstDifferingLine(primary, other);
  out.add('body', 'changed', 'body', line.primary, line.other);
}
