import type { AccessLogConfig, LogFormat } from '../access-log-model';
import { type Ctx, type Pb, at, each, fail, typeUrlName, unpackAny } from './common';
import { decodeAccessLogFilter } from './access-log-filter';
import { type FormatContext, decodeSubstitutionFormat, json, text } from './access-log-format';

// `access_log` of an HTTP connection manager (HCM field 13) or of a listener (field 22): the
// file, stdout and stderr loggers, and sidemirror's shadow logger (connection managers only).

const FILE = 'envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT = 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const STDERR = 'envoy.extensions.access_loggers.stream.v3.StderrAccessLog';
export const SHADOW_ACCESS_LOG = 'sidemirror.access_loggers.shadow.v1.ShadowAccessLog';

const SUPPORTED = 'envoy.access_loggers.file, envoy.access_loggers.stdout, envoy.access_loggers.stderr and sidemirror.access_loggers.shadow are';

export function decodeAccessLogs(obj: Pb, ctx: Ctx, owner: 'connection_manager' | 'listener'): AccessLogConfig[] {
  return each(ctx, obj, 'access_log', (a, actx) => decodeAccessLog(a, actx, owner))
    .filter((a): a is AccessLogConfig => a !== null);
}

function decodeAccessLog(a: Pb, ctx: Ctx, owner: 'connection_manager' | 'listener'): AccessLogConfig | null {
  const name = String(a.name ?? '');
  const filter = a.filter ? decodeAccessLogFilter(a.filter as Pb, at(ctx, 'filter')) : null;
  const tctx = at(ctx, 'typed_config');
  if (!a.typed_config) {
    fail(tctx, 'typed_config is required');
    return null;
  }
  const cfg = unpackAny(a.typed_config as Pb, tctx, true);
  const type = cfg ? typeUrlName(cfg.typeUrl) : typeUrlName(String((a.typed_config as Pb).type_url ?? ''));
  if (!cfg || ![FILE, STDOUT, STDERR, SHADOW_ACCESS_LOG].includes(type)) {
    fail(tctx, `access logger "${type}" is not supported by sidemirror (${SUPPORTED})`);
    return null;
  }
  const c = cfg.value as Pb;
  const shadows = type === SHADOW_ACCESS_LOG;
  if (shadows && owner === 'listener') {
    fail(tctx, 'sidemirror.access_loggers.shadow logs shadow requests: list it in an HTTP connection manager\'s access_log');
    return null;
  }
  const fc: FormatContext = { shadow: shadows };
  if (type === STDOUT || type === STDERR) {
    return { name, filter, target: { path: type === STDOUT ? '/dev/stdout' : '/dev/stderr' }, format: logFormat(c, tctx, 'log_format', fc), shadows };
  }
  const path = String(c.path ?? '');
  if (!path) fail(at(tctx, 'path'), 'path is required');
  const format = type === FILE ? fileFormat(c, tctx, fc) : logFormat(c, tctx, 'log_format', fc);
  return { name, filter, target: { path }, format, shadows };
}

function logFormat(c: Pb, ctx: Ctx, field: string, fc: FormatContext): LogFormat | null {
  return c[field] ? decodeSubstitutionFormat(c[field] as Pb, at(ctx, field), fc) : null;
}

/** FileAccessLog's oneof: log_format, or the deprecated format, json_format and typed_json_format. */
function fileFormat(c: Pb, ctx: Ctx, fc: FormatContext): LogFormat | null {
  // An empty format is Envoy's default, as Envoy reads it.
  if (c.format !== undefined) return String(c.format) === '' ? null : text(String(c.format), false, at(ctx, 'format'), fc);
  if (c.json_format !== undefined) return json(c.json_format as Pb, false, false, at(ctx, 'json_format'), fc);
  if (c.typed_json_format !== undefined) return json(c.typed_json_format as Pb, false, true, at(ctx, 'typed_json_format'), fc);
  return logFormat(c, ctx, 'log_format', fc);
}
