import type { FormatToken } from '../config/access-log-model';
import { OPERATOR_SYNTAX, syntaxProblem } from './operator-syntax';

// Envoy's substitution format parser, rule for rule: text is literal except `%%` (one `%`) and
// operators `%COMMAND(ARG):LENGTH%`, COMMAND made of A-Z, 0-9 and `_`, ARG anything up to the
// first `)` after which the rest of the operator fits, LENGTH digits. A `%` that starts no valid
// operator, or an operator sidemirror does not render, refuses the whole format.

const OPERATOR = /%([A-Z0-9_]+)(?:\((.*?)\))?(?::([0-9]+))?%/y;

export interface ParseOptions {
  /** The shadow logger's own operators (%SHADOW_CLUSTER%…) are allowed. */
  readonly shadow?: boolean;
}

export type ParseResult =
  | { readonly ok: true; readonly tokens: FormatToken[] }
  | { readonly ok: false; readonly error: string };

export function parseFormat(format: string, options: ParseOptions = {}): ParseResult {
  const tokens: FormatToken[] = [];
  let text = '';
  let pos = 0;
  while (pos < format.length) {
    const c = format[pos]!;
    if (c !== '%') {
      text += c;
      pos++;
      continue;
    }
    if (format[pos + 1] === '%') {
      text += '%';
      pos += 2;
      continue;
    }
    OPERATOR.lastIndex = pos;
    const m = OPERATOR.exec(format);
    if (m === null) return { ok: false, error: `Incorrect configuration: ${format}. Couldn't find valid command at position ${pos}` };
    const [whole, name, arg = '', length] = m as unknown as [string, string, string | undefined, string | undefined];
    const syntax = OPERATOR_SYNTAX.get(name);
    if (!syntax || (syntax.shadowOnly && !options.shadow)) {
      const where = syntax ? ' outside sidemirror.access_loggers.shadow' : '';
      return { ok: false, error: `Not supported field in StreamInfo: ${name} (command operator %${name}% is not supported by sidemirror${where})` };
    }
    const maxLength = length === undefined ? null : Number(length);
    const problem = syntaxProblem(name, syntax, arg, maxLength);
    if (problem !== null) return { ok: false, error: problem };
    if (text !== '') tokens.push({ kind: 'text', text });
    text = '';
    tokens.push({ kind: 'operator', name, arg, maxLength });
    pos += whole.length;
  }
  // Envoy keeps a trailing literal, and an empty format as one empty literal.
  if (text !== '' || format === '') tokens.push({ kind: 'text', text });
  return { ok: true, tokens };
}

/** Envoy's default access log format (SubstitutionFormatUtils::DEFAULT_FORMAT). */
export const ENVOY_DEFAULT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ' +
  '%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ' +
  '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n';

/**
 * sidemirror's default shadow line, shaped like Envoy's: where the request's line has the
 * response flags and sizes, a shadow's has its outcome and reason; the cluster comes last.
 */
export const SHADOW_DEFAULT_FORMAT =
  '[%START_TIME%] shadow "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ' +
  '%RESPONSE_CODE% %SHADOW_OUTCOME% %SHADOW_REASON% %DURATION% "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" ' +
  '"%SHADOW_CLUSTER%" "%UPSTREAM_HOST%" "%SHADOW_POLICY%"\n';
