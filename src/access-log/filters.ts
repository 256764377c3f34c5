import type { AccessLogFilter, ComparisonOp, RuntimeUInt32 } from '../config/access-log-model';
import type { Runtime } from '../runtime/runtime';
import { compileHeaderMatcher } from '../router/matchers';
import { randomUint32 } from '../router/route-table';
import type { LogEntry } from './entry';
import { grpcStatusOf } from './grpc-status';
import { flagBit } from './response-flags';

// Envoy's access log filters (access_log_impl.cc), compiled once per config into predicates over
// a log entry. Runtime keys are read on each evaluation, so /runtime_modify takes effect at once.

export type EntryFilter = (e: LogEntry) => boolean;

export function compileFilter(f: AccessLogFilter, runtime: Runtime): EntryFilter {
  switch (f.kind) {
    case 'status_code':
      return comparison(f.op, f.value, runtime, (e) => e.responseCode);
    case 'duration':
      return comparison(f.op, f.value, runtime, (e) => Math.floor(e.durationMs));
    case 'not_health_check':
      // No stream is a health check here: sidemirror has no health_check HTTP filter yet.
      return () => true;
    case 'runtime':
      return (e) => runtime.featureEnabled(f.runtimeKey, f.percent, f.independentRandomness ? randomUint32() : requestIdRandom(e) ?? randomUint32());
    case 'and': {
      const all = f.filters.map((x) => compileFilter(x, runtime));
      return (e) => all.every((p) => p(e));
    }
    case 'or': {
      const any = f.filters.map((x) => compileFilter(x, runtime));
      return (e) => any.some((p) => p(e));
    }
    case 'header': {
      const test = compileHeaderMatcher(f.header);
      return (e) => e.requestHeader !== null && test(e.requestHeader);
    }
    case 'response_flag': {
      const mask = f.flags.reduce((m, name) => m | (flagBit(name) ?? 0), 0);
      return f.flags.length === 0 ? (e) => e.responseFlags !== 0 : (e) => (e.responseFlags & mask) !== 0;
    }
    case 'grpc_status': {
      const statuses = new Set(f.statuses);
      // No status at all counts as UNKNOWN (2), as in Envoy.
      return (e) => statuses.has(grpcStatusOf(e, true) ?? 2) !== f.exclude;
    }
  }
}

function comparison(op: ComparisonOp, value: RuntimeUInt32, runtime: Runtime, of: (e: LogEntry) => number): EntryFilter {
  return (e) => {
    const raw = runtime.get(value.runtimeKey);
    const limit = raw !== undefined && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : value.defaultValue;
    const v = of(e);
    return op === 'EQ' ? v === limit : op === 'GE' ? v >= limit : v <= limit;
  };
}

/**
 * Envoy samples by the request id unless use_independent_randomness: the first 8 hex digits of
 * x-request-id, so that every log of one request agrees. null without a usable id.
 */
function requestIdRandom(e: LogEntry): number | null {
  const id = e.requestHeader?.('x-request-id');
  if (id === undefined || id.length < 8 || !/^[0-9a-fA-F]{8}/.test(id)) return null;
  return Number.parseInt(id.slice(0, 8), 16);
}
