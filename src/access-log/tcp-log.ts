import type { AccessLogConfig } from '../config/access-log-model';
import type { Runtime } from '../runtime/runtime';
import type { TcpSessionInfo } from '../tcp/session-info';
import { idOf } from './connection-id';
import { connectionEntry } from './entry';
import { hostEndpoint } from './http-log';
import { type CompiledLogger, compileLoggers, emit } from './loggers';
import type { AccessLogManager } from './manager';
import { type ResponseFlag, bitOf } from './response-flags';

/**
 * A TCP proxy's access_log: one line per proxied connection once both sides have closed, with
 * what Envoy's operators read for TCP (bytes each way, duration, upstream host and cluster, the
 * downstream address, response flags); the HTTP operators render "-".
 */
export class TcpSessionLog {
  private constructor(private readonly loggers: readonly CompiledLogger[]) {}

  /** null when the TCP proxy has no access_log. */
  static compile(configs: readonly AccessLogConfig[], manager: AccessLogManager | undefined, runtime: Runtime | undefined): TcpSessionLog | null {
    if (configs.length === 0 || manager === undefined || runtime === undefined) return null;
    return new TcpSessionLog(compileLoggers(configs, manager, runtime));
  }

  readonly ended = (info: TcpSessionInfo): void => {
    let flags = 0;
    for (const f of info.flags) flags |= bitOf(f as ResponseFlag) ?? 0;
    const entry = connectionEntry({
      startEpochMs: info.startTime,
      durationMs: info.durationMs,
      responseFlags: flags,
      bytesReceived: info.bytesReceived,
      bytesSent: info.bytesSent,
      upstreamHost: info.upstreamHost === null ? null : hostEndpoint(info.upstreamHost),
      upstreamCluster: info.upstreamCluster,
      downstreamRemote: hostEndpoint(info.downstreamRemoteAddress),
      downstreamLocal: null,
      connectionId: idOf(info),
    });
    try {
      emit(this.loggers, entry);
    } catch {
      // The line is lost; the connection it describes is already gone.
    }
  };
}
