import * as os from 'node:os';
import type { FormatToken } from '../config/access-log-model';
import type { Endpoint, HeaderGet, LogEntry } from './entry';
import { grpcStatusOf, grpcStatusText } from './grpc-status';
import { longFlags, shortFlags } from './response-flags';
import { timeFormatter } from './time-format';

// Each command operator as a function of a log entry. A value is a string, a number (rendered as
// a JSON number in typed JSON), or null when the stream has none (Envoy's "-", or JSON null).

export type Value = string | number | null;
export type ValueOf = (e: LogEntry) => Value;

type Operator = Extract<FormatToken, { kind: 'operator' }>;

const ms = (v: number | null): number | null => (v === null ? null : Math.floor(v));
const nonEmpty = (v: string | null): string | null => (v === null || v === '' ? null : v);

/** Envoy renders an IP address with its port as `1.2.3.4:80` or `[::1]:80`. */
function withPort(a: Endpoint | null): string | null {
  if (a === null) return null;
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

const SIMPLE: Readonly<Record<string, ValueOf>> = {
  RESPONSE_CODE: (e) => e.responseCode,
  RESPONSE_FLAGS: (e) => shortFlags(e.responseFlags),
  RESPONSE_FLAGS_LONG: (e) => longFlags(e.responseFlags),
  BYTES_RECEIVED: (e) => e.bytesReceived,
  BYTES_SENT: (e) => e.bytesSent,
  PROTOCOL: (e) => e.protocol,
  DURATION: (e) => Math.floor(e.durationMs),
  REQUEST_DURATION: (e) => ms(e.requestDurationMs),
  RESPONSE_DURATION: (e) => ms(e.responseDurationMs),
  RESPONSE_TX_DURATION: (e) => (e.responseDurationMs === null ? null : Math.floor(e.durationMs) - Math.floor(e.responseDurationMs)),
  UPSTREAM_HOST: (e) => withPort(e.upstreamHost),
  UPSTREAM_REMOTE_ADDRESS: (e) => withPort(e.upstreamHost),
  UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: (e) => e.upstreamHost?.address ?? null,
  UPSTREAM_REMOTE_PORT: (e) => e.upstreamHost?.port ?? null,
  UPSTREAM_CLUSTER: (e) => nonEmpty(e.upstreamCluster),
  UPSTREAM_TRANSPORT_FAILURE_REASON: (e) => nonEmpty(e.upstreamTransportFailureReason),
  UPSTREAM_REQUEST_ATTEMPT_COUNT: (e) => e.upstreamAttempts,
  DOWNSTREAM_REMOTE_ADDRESS: (e) => withPort(e.downstreamRemote),
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: (e) => e.downstreamRemote?.address ?? null,
  DOWNSTREAM_REMOTE_PORT: (e) => e.downstreamRemote?.port ?? null,
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: (e) => withPort(e.downstreamDirectRemote),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: (e) => e.downstreamDirectRemote?.address ?? null,
  DOWNSTREAM_DIRECT_REMOTE_PORT: (e) => e.downstreamDirectRemote?.port ?? null,
  DOWNSTREAM_LOCAL_ADDRESS: (e) => withPort(e.downstreamLocal),
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: (e) => e.downstreamLocal?.address ?? null,
  DOWNSTREAM_LOCAL_PORT: (e) => e.downstreamLocal?.port ?? null,
  ROUTE_NAME: (e) => nonEmpty(e.routeName),
  REQUESTED_SERVER_NAME: (e) => nonEmpty(e.requestedServerName),
  CONNECTION_ID: (e) => e.connectionId,
  LOCAL_REPLY_BODY: (e) => e.localReplyBody ?? '',
  GRPC_STATUS_NUMBER: (e) => grpcStatusOf(e),
  SHADOW_CLUSTER: (e) => nonEmpty(e.shadow?.cluster ?? null),
  SHADOW_OUTCOME: (e) => nonEmpty(e.shadow?.outcome ?? null),
  SHADOW_REASON: (e) => nonEmpty(e.shadow?.reason ?? null),
  SHADOW_POLICY: (e) => e.shadow?.policy ?? null,
};

/** The value function of one operator token (its syntax was checked when the format was parsed). */
export function compileOperator(op: Operator): ValueOf {
  const simple = SIMPLE[op.name];
  if (simple) return simple;
  switch (op.name) {
    case 'START_TIME': {
      const format = timeFormatter(op.arg);
      return (e) => format(e.startEpochMs);
    }
    case 'REQ':
      return header(op, (e) => e.requestHeader);
    case 'RESP':
      return header(op, (e) => e.responseHeader);
    case 'TRAILER':
      return header(op, (e) => e.responseTrailer);
    case 'RESPONSE_CODE_DETAILS':
      // Spaces become underscores, so that a text line splits on its spaces (Envoy's rule).
      if (op.arg === 'ALLOW_WHITESPACES') return (e) => e.responseCodeDetails;
      return (e) => (e.responseCodeDetails === null ? null : e.responseCodeDetails.replace(/\s/g, '_'));
    case 'GRPC_STATUS':
      return (e) => grpcStatusText(grpcStatusOf(e), op.arg || 'CAMEL_STRING');
    case 'HOSTNAME': {
      const name = os.hostname();
      return () => name;
    }
    case 'ENVIRONMENT': {
      // Read once, as Envoy reads it when the format is built.
      const value = process.env[op.arg];
      const v = value === undefined ? '-' : truncate(value, op.maxLength);
      return () => v;
    }
    default:
      throw new Error(`no renderer for %${op.name}%`);
  }
}

/** %REQ(X?Y):Z%: X, else Y, cut to Z characters; pseudo headers by their lower-case name. */
function header(op: Operator, from: (e: LogEntry) => HeaderGet | null): ValueOf {
  const [main, alt] = op.arg.toLowerCase().split('?') as [string, string | undefined];
  const max = op.maxLength;
  return (e) => {
    const get = from(e);
    if (get === null) return null;
    let v = get(main);
    if (v === undefined && alt) v = get(alt);
    return v === undefined ? null : truncate(v, max);
  };
}

function truncate(v: string, max: number | null): string {
  return max === null || v.length <= max ? v : v.slice(0, max);
}
