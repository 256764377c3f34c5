import type { Socket } from 'node:net';
import type { AccessLogConfig } from '../config/access-log-model';
import type { Runtime } from '../runtime/runtime';
import { idOf } from './connection-id';
import { connectionEntry } from './entry';
import { endpoint } from './http-log';
import { type CompiledLogger, compileLoggers, emit } from './loggers';
import type { AccessLogManager } from './manager';
import { bitOf } from './response-flags';

/**
 * A listener's access_log: one line per downstream connection when it closes, as Envoy writes a
 * listener's logs (a connection no filter chain took has NR). The HTTP operators render "-" here,
 * as in Envoy's TCP lines; sizes and duration are the connection's.
 */
export class ConnectionLog {
  readonly #open = new WeakMap<Socket, { flags: number }>();

  private constructor(private readonly loggers: readonly CompiledLogger[]) {}

  /** null when the listener has no access_log. */
  static compile(configs: readonly AccessLogConfig[], manager: AccessLogManager | undefined, runtime: Runtime | undefined): ConnectionLog | null {
    if (configs.length === 0 || manager === undefined || runtime === undefined) return null;
    return new ConnectionLog(compileLoggers(configs, manager, runtime));
  }

  /** A connection was accepted: its line is written when it closes. */
  accepted(socket: Socket): void {
    const started = performance.now();
    const startEpochMs = performance.timeOrigin + started;
    const state = { flags: 0 };
    this.#open.set(socket, state);
    const remote = endpoint(socket.remoteAddress, socket.remotePort);
    const local = endpoint(socket.localAddress, socket.localPort);
    socket.once('close', () => {
      const entry = connectionEntry({
        startEpochMs,
        durationMs: performance.now() - started,
        responseFlags: state.flags,
        bytesReceived: socket.bytesRead,
        bytesSent: socket.bytesWritten,
        upstreamHost: null,
        upstreamCluster: null,
        downstreamRemote: remote,
        downstreamLocal: local,
        connectionId: idOf(socket),
      });
      try {
        emit(this.loggers, entry);
      } catch {
        // The line is lost; the connection it describes is already gone.
      }
    });
  }

  /** No filter chain matched the connection (Envoy's NR on a listener's line). */
  noFilterChain(socket: Socket): void {
    const state = this.#open.get(socket);
    if (state) state.flags |= bitOf('NR');
  }
}
