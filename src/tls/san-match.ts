import type { SanMatcher } from '../config/transport-model';
import { compileStringMatcher } from '../router/matchers';

// A peer certificate's subject alternative names, and Envoy's match_typed_subject_alt_names.

export type SanType = 'DNS' | 'URI' | 'IP_ADDRESS' | 'EMAIL' | 'OTHER';

export interface PeerSan {
  readonly type: SanType;
  readonly value: string;
}

const TYPES: ReadonlyMap<string, SanType> = new Map([
  ['DNS', 'DNS'],
  ['URI', 'URI'],
  ['IP Address', 'IP_ADDRESS'],
  ['email', 'EMAIL'],
]);

/**
 * Parses Node's `subjectaltname` string (`DNS:a, URI:spiffe://td/x, IP Address:10.0.0.1`).
 * Node writes a value holding a comma, a quote, a backslash or a control character as a JSON
 * string (`DNS:"a\u002cb"`), so a hostile SAN cannot pose as two. IPv6 addresses, which Node
 * prints uncompressed, are compressed as Envoy prints them (`::1`). Unparseable text ends the
 * list: what was read before stays.
 */
export function parseSubjectAltNames(text: string | undefined): PeerSan[] {
  const out: PeerSan[] = [];
  if (!text) return out;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const label = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = closingQuote(text, colon + 2);
      if (end < 0) break;
      try {
        value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      } catch {
        break;
      }
      end++;
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    const type = TYPES.get(label) ?? 'OTHER';
    out.push({ type, value: type === 'IP_ADDRESS' ? canonicalIp(value) : value });
    if (end >= text.length) break;
    if (!text.startsWith(', ', end)) break;
    i = end + 2;
  }
  return out;
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip;
  }
}

/**
 * Envoy's dnsNameMatch: `dnsName` (from config) against a certificate's DNS SAN `pattern`,
 * ASCII case-insensitively. Besides equality, a wildcard in the left-most label of the pattern
 * (`*.example.com`, `b*z.example.com`) stands for exactly one label; an A-label (`xn--…`) is
 * never wildcarded.
 */
export function dnsNameMatch(dnsName: string, pattern: string): boolean {
  const name = asciiLower(dnsName);
  const pat = asciiLower(pattern);
  if (name === pat) return true;
  const pDot = pat.indexOf('.');
  const nDot = name.indexOf('.');
  if (pDot < 0 || nDot < 0) return false;
  const pLabel = pat.slice(0, pDot);
  const pRest = pat.slice(pDot + 1);
  if (!pLabel.includes('*') || pRest.includes('*') || pLabel.startsWith('xn--')) return false;
  return name.slice(nDot + 1) === pRest && labelWildcardMatch(name.slice(0, nDot), pLabel);
}

function labelWildcardMatch(label: string, pattern: string): boolean {
  if (pattern === '*') return true;
  const star = pattern.indexOf('*');
  if (star !== pattern.lastIndexOf('*')) return false;
  const head = pattern.slice(0, star);
  const tail = pattern.slice(star + 1);
  return pattern.length <= label.length + 1 && label.startsWith(head) && label.endsWith(tail);
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** Whether a peer's SANs satisfy the matchers. */
export type SanPredicate = (sans: readonly PeerSan[]) => boolean;

/**
 * Compiles match_typed_subject_alt_names: one SAN of the matcher's type must match one matcher.
 * A DNS matcher of kind `exact` follows DNS rules (dnsNameMatch, so a `*.example.com` SAN
 * matches `a.example.com`); every other matcher is an ordinary StringMatcher on the SAN's text.
 * Returns null for an empty list: any certificate passes.
 */
export function compileSanMatchers(matchers: readonly SanMatcher[]): SanPredicate | null {
  if (matchers.length === 0) return null;
  const compiled = matchers.map((m) => {
    if (m.sanType === 'DNS' && m.matcher.kind === 'exact') {
      const expected = m.matcher.value;
      return { type: 'DNS' as SanType, test: (v: string) => dnsNameMatch(expected, v) };
    }
    return { type: m.sanType as SanType, test: compileStringMatcher(m.matcher) };
  });
  return (sans) => compiled.some((m) => sans.some((s) => s.type === m.type && m.test(s.value)));
}
