/** Envoy's type.matcher.v3.StringMatcher, decoded (kept apart so that every model file can use it). */
export type StringMatcher =
  | { readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly value: string; readonly ignoreCase: false };
