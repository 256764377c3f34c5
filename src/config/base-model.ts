// Small model types that every part of the model uses (header edits, fractions).

/** Envoy's HeaderValueOption, with `append` folded into `appendAction`. */
export interface HeaderToAdd {
  readonly key: string;
  readonly value: string;
  readonly appendAction:
    | 'APPEND_IF_EXISTS_OR_ADD'
    | 'ADD_IF_ABSENT'
    | 'OVERWRITE_IF_EXISTS_OR_ADD'
    | 'OVERWRITE_IF_EXISTS';
  readonly keepEmptyValue: boolean;
}

export type HeaderMutation =
  | { readonly kind: 'remove'; readonly name: string }
  | { readonly kind: 'append'; readonly header: HeaderToAdd };

export interface HeaderEdits {
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly responseHeadersToRemove: readonly string[];
}

export interface FractionalPercent {
  readonly numerator: number;
  readonly denominator: number; // 100, 10_000 or 1_000_000
}

export interface RuntimeFraction {
  readonly defaultValue: FractionalPercent;
  /** Empty when the fraction cannot be overridden at run time. */
  readonly runtimeKey: string;
}
