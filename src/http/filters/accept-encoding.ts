// Which encoding a response gets, decided once per request for all the compressor filters of a
// chain, Envoy's way: among the compressors that would take the response's content type, the
// client's Accept-Encoding entry with the highest q-value (the first of equals, unless a later
// one's filter says choose_first); `*` means the first compressor in the chain; q=0 rules an
// encoding out. Names compare without case (RFC 9110), where Envoy compares them exactly.

/** One compressor filter of the chain, as the choice sees it. */
export interface EncodingOffer {
  /** The Content-Encoding it produces: gzip, br. */
  readonly encoding: string;
  readonly chooseFirst: boolean;
  /** Lowercase media types it compresses. */
  readonly contentTypes: ReadonlySet<string>;
}

/** What the Accept-Encoding header said, as Envoy's header_* stats count it. */
export type HeaderVerdict = 'valid' | 'identity' | 'wildcard' | 'not_valid';

export interface EncodingDecision {
  /** The encoding to use, or identity for none. */
  readonly encoding: string;
  readonly verdict: HeaderVerdict;
}

interface Accepted {
  readonly name: string;
  readonly q: number;
}

const IDENTITY = 'identity';
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Accept-Encoding's entries in order; an entry whose q-value does not parse is left out, as Envoy does. */
export function parseAcceptEncoding(header: string): Accepted[] {
  const out: Accepted[] = [];
  for (const token of header.split(',')) {
    if (token.trim() === '') continue;
    const semi = token.indexOf(';');
    const name = (semi < 0 ? token : token.slice(0, semi)).trim().toLowerCase();
    let q = 1;
    if (semi >= 0) {
      const params = token.slice(semi + 1);
      const eq = params.indexOf('=');
      if (eq >= 0 && params.slice(0, eq).trim().toLowerCase() === 'q') {
        const value = params.slice(eq + 1).trim();
        if (!DECIMAL.test(value)) continue;
        q = Number(value);
      }
    }
    out.push({ name, q });
  }
  return out;
}

/**
 * The encoding for a response of `mediaType` (lowercase, without parameters; '' when the
 * response has no content-type), given the request's Accept-Encoding and the chain's
 * compressors in chain order.
 */
export function chooseEncoding(acceptEncoding: string, mediaType: string, offers: readonly EncodingOffer[]): EncodingDecision {
  // The compressors that would take this content type, the first one of each encoding.
  const allowed = new Map<string, EncodingOffer>();
  for (const offer of offers) {
    if (mediaType !== '' && !offer.contentTypes.has(mediaType)) continue;
    if (!allowed.has(offer.encoding)) allowed.set(offer.encoding, offer);
  }
  const accepted = parseAcceptEncoding(acceptEncoding);
  for (const a of accepted) if (a.q === 0) allowed.delete(a.name);
  if (accepted.length === 0 || allowed.size === 0) return { encoding: IDENTITY, verdict: 'not_valid' };

  let choice: Accepted = { name: IDENTITY, q: 0 };
  for (const a of accepted) {
    const offer = allowed.get(a.name);
    if (!offer && a.name !== IDENTITY && a.name !== '*') continue;
    if (a.q > choice.q || (a.q === choice.q && offer?.chooseFirst === true)) choice = a;
  }
  if (choice.q === 0) return { encoding: IDENTITY, verdict: 'not_valid' };
  if (choice.name === IDENTITY) return { encoding: IDENTITY, verdict: 'identity' };
  if (choice.name === '*') return { encoding: allowed.keys().next().value!, verdict: 'wildcard' };
  return { encoding: choice.name, verdict: 'valid' };
}
