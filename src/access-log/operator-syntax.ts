// Which command operators sidemirror renders, and what each accepts between its parentheses and
// after its colon, checked as Envoy's CommandSyntaxChecker checks them (its messages too).

/** COMMAND_ONLY: no argument, no length. Otherwise what may or must follow the name. */
export interface OperatorSyntax {
  readonly params: 'none' | 'optional' | 'required';
  readonly lengthAllowed: boolean;
  /** Only in sidemirror's shadow logger. */
  readonly shadowOnly?: boolean;
  /** An argument problem, or null. */
  readonly checkArg?: (arg: string) => string | null;
}

const PLAIN: OperatorSyntax = { params: 'none', lengthAllowed: false };
const HEADER: OperatorSyntax = { params: 'required', lengthAllowed: true, checkArg: headerArgProblem };
const SHADOW: OperatorSyntax = { params: 'none', lengthAllowed: false, shadowOnly: true };

export const OPERATOR_SYNTAX: ReadonlyMap<string, OperatorSyntax> = new Map<string, OperatorSyntax>([
  ['START_TIME', { params: 'optional', lengthAllowed: false, checkArg: timeFormatProblem }],
  ['REQ', HEADER],
  ['RESP', HEADER],
  ['TRAILER', HEADER],
  ['ENVIRONMENT', { params: 'required', lengthAllowed: true }],
  ['RESPONSE_CODE_DETAILS', { params: 'optional', lengthAllowed: false, checkArg: (a) => (a === '' || a === 'ALLOW_WHITESPACES' ? null : `RESPONSE_CODE_DETAILS takes ALLOW_WHITESPACES or nothing, not "${a}"`) }],
  ['GRPC_STATUS', { params: 'optional', lengthAllowed: false, checkArg: (a) => (a === '' || GRPC_STATUS_FORMATS.has(a) ? null : `GRPC_STATUS only supports CAMEL_STRING, SNAKE_STRING or NUMBER, not "${a}"`) }],
  ...[
    'RESPONSE_CODE', 'RESPONSE_FLAGS', 'RESPONSE_FLAGS_LONG', 'BYTES_RECEIVED', 'BYTES_SENT', 'PROTOCOL',
    'DURATION', 'REQUEST_DURATION', 'RESPONSE_DURATION', 'RESPONSE_TX_DURATION',
    'UPSTREAM_HOST', 'UPSTREAM_CLUSTER', 'UPSTREAM_REMOTE_ADDRESS', 'UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT', 'UPSTREAM_REMOTE_PORT',
    'UPSTREAM_TRANSPORT_FAILURE_REASON', 'UPSTREAM_REQUEST_ATTEMPT_COUNT',
    'DOWNSTREAM_REMOTE_ADDRESS', 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT', 'DOWNSTREAM_REMOTE_PORT',
    'DOWNSTREAM_DIRECT_REMOTE_ADDRESS', 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT', 'DOWNSTREAM_DIRECT_REMOTE_PORT',
    'DOWNSTREAM_LOCAL_ADDRESS', 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT', 'DOWNSTREAM_LOCAL_PORT',
    'ROUTE_NAME', 'REQUESTED_SERVER_NAME', 'HOSTNAME', 'CONNECTION_ID', 'LOCAL_REPLY_BODY', 'GRPC_STATUS_NUMBER',
  ].map((name): [string, OperatorSyntax] => [name, PLAIN]),
  ...['SHADOW_CLUSTER', 'SHADOW_OUTCOME', 'SHADOW_REASON', 'SHADOW_POLICY'].map((name): [string, OperatorSyntax] => [name, SHADOW]),
]);

export const GRPC_STATUS_FORMATS = new Set(['CAMEL_STRING', 'SNAKE_STRING', 'NUMBER']);

/** Envoy's syntax check of one operator; null when it is well formed. */
export function syntaxProblem(name: string, s: OperatorSyntax, arg: string, maxLength: number | null): string | null {
  if (s.params === 'none' && (arg !== '' || maxLength !== null)) return `${name} does not take any parameters or length`;
  if (s.params === 'required' && arg === '') return `${name} requires parameters`;
  if (!s.lengthAllowed && maxLength !== null) return `${name} does not allow length to be specified.`;
  return s.checkArg?.(arg) ?? null;
}

function headerArgProblem(arg: string): string | null {
  if (arg.split('?').length > 2) return `More than 1 alternative header specified in token: ${arg}`;
  if (/[\r\n\0]/.test(arg)) return 'Invalid header configuration. Format string contains null or newline.';
  return null;
}

function timeFormatProblem(arg: string): string | null {
  // A %n would put a line break in the middle of a log line (Envoy's check).
  return /%[-_0^#]*[1-9]*(E|O)?n/.test(arg) ? 'Invalid header configuration. Format string contains newline.' : null;
}
