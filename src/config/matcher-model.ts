/** Envoy's type.matcher.v3.StringMatcher, decoded (kept apart so that every model file can use it). */
export type StringMatcher =
  | { readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly value: string; readonly ignoreCase: false };

export type HeaderMatch =
  | { readonly kind: 'string'; readonly matcher: StringMatcher }
  | { readonly kind: 'present'; readonly present: boolean }
  | { readonly kind: 'range'; readonly start: number; readonly end: number };

/** Envoy's route.v3.HeaderMatcher, decoded (routes, retry policies, HTTP filters, access log header filters). */
export interface HeaderMatcher {
  readonly name: string;
  readonly match: HeaderMatch;
  readonly invert: boolean;
  readonly treatMissingAsEmpty: boolean;
}
