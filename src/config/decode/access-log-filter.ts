import { flagBit } from '../../access-log/response-flags';
import type { AccessLogFilter, ComparisonOp, RuntimeUInt32 } from '../access-log-model';
import { messageType } from '../proto';
import { type Ctx, type Pb, at, each, fail, fractionalPercent } from './common';
import { decodeHeaderMatcher } from './route';

// config.accesslog.v3.AccessLogFilter with Envoy's validation rules (required comparisons and
// runtime keys, at least two filters in and/or, known flag names); traceable_filter is refused.

const OPS = new Set(['EQ', 'GE', 'LE']);

export function decodeAccessLogFilter(f: Pb, ctx: Ctx): AccessLogFilter | null {
  if (f.status_code_filter) return comparisonFilter('status_code', f.status_code_filter as Pb, at(ctx, 'status_code_filter'));
  if (f.duration_filter) return comparisonFilter('duration', f.duration_filter as Pb, at(ctx, 'duration_filter'));
  if (f.not_health_check_filter) return { kind: 'not_health_check' };
  if (f.traceable_filter) {
    fail(at(ctx, 'traceable_filter'), 'not supported by sidemirror (it has no tracing)');
    return null;
  }
  if (f.runtime_filter) return runtimeFilter(f.runtime_filter as Pb, at(ctx, 'runtime_filter'));
  if (f.and_filter) return listFilter('and', f.and_filter as Pb, at(ctx, 'and_filter'));
  if (f.or_filter) return listFilter('or', f.or_filter as Pb, at(ctx, 'or_filter'));
  if (f.header_filter) {
    const hctx = at(ctx, 'header_filter');
    const h = (f.header_filter as Pb).header as Pb | undefined;
    if (!h) {
      fail(at(hctx, 'header'), 'header is required');
      return null;
    }
    return { kind: 'header', header: decodeHeaderMatcher(h, at(hctx, 'header')) };
  }
  if (f.response_flag_filter) return responseFlagFilter(f.response_flag_filter as Pb, at(ctx, 'response_flag_filter'));
  if (f.grpc_status_filter) return grpcStatusFilter(f.grpc_status_filter as Pb, at(ctx, 'grpc_status_filter'));
  fail(ctx, 'one filter (status_code_filter, duration_filter, not_health_check_filter, runtime_filter, and_filter, or_filter, header_filter, response_flag_filter, grpc_status_filter) is required');
  return null;
}

function comparisonFilter(kind: 'status_code' | 'duration', f: Pb, ctx: Ctx): AccessLogFilter | null {
  const c = f.comparison as Pb | undefined;
  const cctx = at(ctx, 'comparison');
  if (!c) {
    fail(cctx, 'comparison is required');
    return null;
  }
  const op = String(c.op ?? 'EQ');
  if (!OPS.has(op)) fail(at(cctx, 'op'), `unknown value ${op}`);
  const value = runtimeUInt32(c.value as Pb | undefined, at(cctx, 'value'));
  return value === null ? null : { kind, op: op as ComparisonOp, value };
}

function runtimeUInt32(v: Pb | undefined, ctx: Ctx): RuntimeUInt32 | null {
  if (!v) {
    fail(ctx, 'value is required');
    return null;
  }
  const runtimeKey = String(v.runtime_key ?? '');
  // Envoy requires the key (min_len 1); configs that want none name a key nobody sets.
  if (!runtimeKey) fail(at(ctx, 'runtime_key'), 'runtime_key is required');
  return { defaultValue: Number(v.default_value ?? 0), runtimeKey };
}

function runtimeFilter(f: Pb, ctx: Ctx): AccessLogFilter {
  const runtimeKey = String(f.runtime_key ?? '');
  if (!runtimeKey) fail(at(ctx, 'runtime_key'), 'runtime_key is required');
  return {
    kind: 'runtime',
    runtimeKey,
    percent: fractionalPercent(f.percent_sampled as Pb | undefined),
    independentRandomness: Boolean(f.use_independent_randomness),
  };
}

function listFilter(kind: 'and' | 'or', f: Pb, ctx: Ctx): AccessLogFilter {
  const filters = each(ctx, f, 'filters', decodeAccessLogFilter);
  if (filters.length < 2) fail(at(ctx, 'filters'), 'at least 2 filters are required');
  return { kind, filters: filters.filter((x): x is AccessLogFilter => x !== null) };
}

function responseFlagFilter(f: Pb, ctx: Ctx): AccessLogFilter {
  const flags = ((f.flags ?? []) as unknown[]).map(String);
  flags.forEach((flag, i) => {
    if (flagBit(flag) === undefined) fail({ ...ctx, path: `${at(ctx, 'flags').path}[${i}]` }, `"${flag}" is not a response flag`);
  });
  return { kind: 'response_flag', flags };
}

function grpcStatusFilter(f: Pb, ctx: Ctx): AccessLogFilter {
  const values = messageType('envoy.config.accesslog.v3.GrpcStatusFilter').lookupEnum('Status').values;
  const statuses: number[] = [];
  ((f.statuses ?? []) as unknown[]).forEach((s, i) => {
    const n = typeof s === 'number' ? s : values[String(s)];
    if (n === undefined || !Object.values(values).includes(n)) fail({ ...ctx, path: `${at(ctx, 'statuses').path}[${i}]` }, `unknown gRPC status ${String(s)}`);
    else statuses.push(n);
  });
  return { kind: 'grpc_status', statuses, exclude: Boolean(f.exclude) };
}
