import type { Socket } from 'node:net';
import type { DownstreamRequest } from './downstream';

// A response that starts before the client has sent all of its request (a primary that failed or
// answered early) ends the HTTP/1 connection, as Envoy's connection manager does: the unread rest
// of the upload leaves nothing to frame a next request on. The response says `connection: close`
// so that a keep-alive client never sends a next request into a closing connection (it would get a
// reset), and the close lingers so that the client's upload in flight does not reset the response.

/** Envoy's delayed_close_timeout default: how long a closing connection keeps reading. */
export const DELAYED_CLOSE_MS = 1000;

/** True when the request declared a body that has not all arrived yet. */
export function bodyPending(req: DownstreamRequest, hasBody: boolean): boolean {
  return hasBody && !req.complete;
}

/**
 * Makes the connection close once this response is out: half-close, keep reading (and
 * discarding) what the client still sends, and destroy the socket when the client ends too or
 * after `lingerMs`. Closing with unread bytes in the kernel would send a reset instead of a FIN,
 * and a client still uploading could lose the response it had not read yet.
 */
export function lingeringClose(socket: Socket, lingerMs = DELAYED_CLOSE_MS): void {
  // Node ends a `connection: close` response's socket through destroySoon(): that is the moment.
  socket.destroySoon = function destroyAfterLinger(this: Socket): void {
    if (this.destroyed) return;
    const timer = setTimeout(() => this.destroy(), lingerMs);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    this.once('end', () => this.destroy());
    // The request's rest goes to its parser, which discards it: make sure nothing holds it paused.
    this.resume();
    this.end();
  };
}

/** What a local reply waits to read of the request before it answers: Envoy's default connection buffer limit. */
export const LOCAL_REPLY_DRAIN_BYTES = 1024 * 1024;

/**
 * Before a local reply to a request still uploading: reads (and discards, for whoever is not
 * listening) the rest of it, up to `maxBytes` and `maxMs`, and calls `done(true)` when it all
 * arrived, so the reply can keep the connection, as Envoy does with a body it has buffered by the
 * time the upstream fails. `done(false)`: the upload is larger or slower, and the connection closes.
 */
export function awaitRequestEnd(req: DownstreamRequest, maxBytes: number, maxMs: number, done: (complete: boolean) => void): void {
  let read = 0;
  const finish = (complete: boolean): void => {
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    done(complete);
  };
  const onData = (chunk: Buffer): void => {
    read += chunk.length;
    if (read > maxBytes) finish(false);
  };
  const onEnd = (): void => finish(true);
  const onClose = (): void => finish(req.complete);
  const timer = setTimeout(() => finish(false), maxMs);
  timer.unref();
  req.on('data', onData);
  req.once('end', onEnd);
  req.once('close', onClose);
  // The refused primary will not read it any more: the request flows to its listeners, or nowhere.
  req.unpipe();
  req.resume();
}
