import type { AccessLogConfig } from '../config/access-log-model';
import type { DownstreamRequest, DownstreamResponse } from '../http/downstream';
import type { StreamInfo } from '../http/stream-info';
import type { Runtime } from '../runtime/runtime';
import type { ShadowEnd, ShadowEndSink } from '../shadow/shadow-end';
import { connectionId } from './connection-id';
import type { Endpoint, HeaderGet, LogEntry } from './entry';
import { headersGet, mapGet, requestGet } from './header-get';
import { type CompiledLogger, compileLoggers, emit } from './loggers';
import type { AccessLogManager } from './manager';
import { RequestFacts } from './request-facts';
import { meterStream } from './stream-meter';

/**
 * The access logs of one HTTP connection manager: a line per request when its response closes
 * (proxied, local reply or refused alike), and with a shadow logger a line per shadow when the
 * shadow ends (which may be after the request's own line).
 */
export class HttpAccessLog {
  private constructor(
    private readonly requests: readonly CompiledLogger[],
    private readonly shadows: readonly CompiledLogger[],
  ) {}

  /** null when the connection manager has no access_log: its requests pay nothing. */
  static compile(configs: readonly AccessLogConfig[], manager: AccessLogManager | undefined, runtime: Runtime): HttpAccessLog | null {
    if (configs.length === 0 || manager === undefined) return null;
    return new HttpAccessLog(
      compileLoggers(configs.filter((c) => !c.shadows), manager, runtime),
      compileLoggers(configs.filter((c) => c.shadows), manager, runtime),
    );
  }

  /** Starts the facts of a request whose headers just came. */
  begin(req: DownstreamRequest, res: DownstreamResponse, stream: StreamInfo, started: number): RequestFacts {
    // The socket's addresses now: Node detaches an HTTP/1 response's socket once it is done.
    const s = req.socket;
    const direct = endpoint(s.remoteAddress, s.remotePort);
    return new RequestFacts(started, stream, meterStream(req, res), direct, endpoint(s.localAddress, s.localPort), connectionId(req));
  }

  /** The response closed: the request's line. */
  end(facts: RequestFacts, req: DownstreamRequest, res: DownstreamResponse): void {
    if (this.requests.length === 0) return;
    const now = performance.now();
    const m = facts.meter;
    // Headers never sent: no response, code 0 (the client went away first).
    const sent = res.headersSent;
    const head = m.head ?? (sent ? res.getHeaders() : null);
    const code = sent ? res.statusCode : 0;
    const entry: LogEntry = {
      ...this.#requestSide(facts, req),
      durationMs: now - facts.started,
      responseDurationMs: facts.upstreamResponseAt === 0 ? null : facts.upstreamResponseAt - facts.started,
      responseHeader: head === null ? null : headersGet(head, code),
      responseTrailer: m.trailers === null ? null : mapGet(m.trailers),
      responseCode: code,
      responseCodeDetails: facts.details,
      responseFlags: facts.flags,
      bytesSent: m.bytesSent,
      upstreamHost: facts.upstreamHost,
      upstreamCluster: facts.cluster,
      upstreamTransportFailureReason: facts.upstreamFailureReason,
      upstreamAttempts: facts.upstreamAttempts,
      localReplyBody: facts.localReplyBody,
      shadow: null,
    };
    safely(() => emit(this.requests, entry));
  }

  /** Where the shadows of this request report their endings; null without a shadow logger. */
  shadowSink(facts: RequestFacts, req: DownstreamRequest): ShadowEndSink | null {
    if (this.shadows.length === 0) return null;
    // The request's side is taken now: the shadow may end long after the request has gone.
    let side: Pick<LogEntry, RequestSide> | null = null;
    return (end: ShadowEnd) => {
      side ??= this.#requestSide(facts, req);
      const started = end.sentAt ?? end.endedAt;
      const entry: LogEntry = {
        ...side,
        startEpochMs: facts.startEpochMs + (started - facts.started),
        durationMs: end.sentAt === null ? 0 : end.endedAt - end.sentAt,
        responseDurationMs: null,
        responseHeader: null,
        responseTrailer: null,
        responseCode: end.status,
        responseCodeDetails: null,
        responseFlags: 0,
        bytesSent: 0,
        upstreamHost: end.host === null ? null : hostEndpoint(end.host),
        upstreamCluster: end.cluster,
        upstreamTransportFailureReason: null,
        upstreamAttempts: end.sentAt === null ? 0 : 1,
        localReplyBody: null,
        shadow: { cluster: end.cluster, outcome: end.outcome, reason: end.reason, policy: end.policy },
      };
      safely(() => emit(this.shadows, entry));
    };
  }

  #requestSide(facts: RequestFacts, req: DownstreamRequest): Pick<LogEntry, RequestSide> {
    const m = facts.meter;
    const requestGetter: HeaderGet = requestGet(req, facts.headers, facts.stream.scheme);
    const remote = facts.trustedRemote;
    return {
      startEpochMs: facts.startEpochMs,
      requestDurationMs: m.requestEndAt === 0 ? null : Math.max(0, m.requestEndAt - facts.started),
      protocol: facts.stream.protocol,
      requestHeader: requestGetter,
      bytesReceived: m.bytesReceived,
      routeName: facts.routeName,
      // A client taken from x-forwarded-for has no port (Envoy prints :0); the peer keeps its own.
      downstreamRemote: remote === null || remote === facts.directRemote?.address ? facts.directRemote : { address: remote, port: 0 },
      downstreamDirectRemote: facts.directRemote,
      downstreamLocal: facts.local,
      connectionId: facts.connectionId,
      requestedServerName: facts.stream.tls?.serverName ?? null,
    };
  }
}

type RequestSide = 'startEpochMs' | 'requestDurationMs' | 'protocol' | 'requestHeader' | 'bytesReceived' | 'routeName' | 'downstreamRemote'
  | 'downstreamDirectRemote' | 'downstreamLocal' | 'connectionId' | 'requestedServerName';

export function endpoint(address: string | undefined, port: number | undefined): Endpoint | null {
  if (address === undefined) return null;
  return { address: address.startsWith('::ffff:') ? address.slice(7) : address, port: port ?? 0 };
}

/** `ip:port` or `[ip]:port` back into its parts. */
function hostEndpoint(hostPort: string): Endpoint {
  const colon = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, colon);
  return { address: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(hostPort.slice(colon + 1)) };
}

/** A line that cannot be made must not take the proxy down with it. */
function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // Nothing to do: the line is lost; the request it describes is already answered.
  }
}
