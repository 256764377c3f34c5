import type { FractionalPercent } from './base-model';
import type { HeaderMatcher } from './matcher-model';

// Access logs in the plain model: where lines go, which streams are logged, and each line's
// template, already parsed (so that an unknown command operator is a config error by path).

/** One piece of a format template: literal text, or a command operator with its argument. */
export type FormatToken =
  | { readonly kind: 'text'; readonly text: string }
  | {
      readonly kind: 'operator';
      /** The command, upper case: `REQ`, `START_TIME`. */
      readonly name: string;
      /** What stood between the parentheses ('' when none). */
      readonly arg: string;
      /** The `:Z` truncation length, or null. */
      readonly maxLength: number | null;
    };

/** A JSON format: objects, lists and constants as given; strings with operators become templates. */
export type JsonTemplate =
  | { readonly kind: 'object'; readonly fields: ReadonlyArray<readonly [string, JsonTemplate]> }
  | { readonly kind: 'list'; readonly items: readonly JsonTemplate[] }
  | { readonly kind: 'constant'; readonly value: string | number | boolean | null }
  | { readonly kind: 'template'; readonly tokens: readonly FormatToken[] };

export type LogFormat =
  | { readonly kind: 'text'; readonly tokens: readonly FormatToken[]; readonly omitEmptyValues: boolean }
  | {
      readonly kind: 'json';
      readonly root: JsonTemplate;
      readonly omitEmptyValues: boolean;
      /** false only for FileAccessLog's deprecated json_format: every value is rendered as a string. */
      readonly typed: boolean;
    };

/** Where lines are written: a file by path; /dev/stdout and /dev/stderr are the process's own. */
export interface LogTarget {
  readonly path: string;
}

export type ComparisonOp = 'EQ' | 'GE' | 'LE';

export interface RuntimeUInt32 {
  readonly defaultValue: number;
  readonly runtimeKey: string;
}

export type AccessLogFilter =
  | { readonly kind: 'status_code' | 'duration'; readonly op: ComparisonOp; readonly value: RuntimeUInt32 }
  | { readonly kind: 'not_health_check' }
  | { readonly kind: 'runtime'; readonly runtimeKey: string; readonly percent: FractionalPercent; readonly independentRandomness: boolean }
  | { readonly kind: 'and' | 'or'; readonly filters: readonly AccessLogFilter[] }
  | { readonly kind: 'header'; readonly header: HeaderMatcher }
  /** Empty flags: any flag set. */
  | { readonly kind: 'response_flag'; readonly flags: readonly string[] }
  | { readonly kind: 'grpc_status'; readonly statuses: readonly number[]; readonly exclude: boolean };

/** An envoy.config.accesslog.v3.AccessLog entry of a connection manager or a listener. */
export interface AccessLogConfig {
  readonly name: string;
  readonly filter: AccessLogFilter | null;
  readonly target: LogTarget;
  /** null: the default format (Envoy's, or sidemirror's shadow line for shadow loggers). */
  readonly format: LogFormat | null;
  /** sidemirror.access_loggers.shadow.v1.ShadowAccessLog: one line per shadow, not per request. */
  readonly shadows: boolean;
}
