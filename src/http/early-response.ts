import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

// A response that starts before the client has sent all of its request (a primary that failed or
// answered early) ends the HTTP/1 connection, as Envoy's connection manager does: the unread rest
// of the upload leaves nothing to frame a next request on. The response says `connection: close`
// so that a keep-alive client never sends a next request into a closing connection (it would get a
// reset), and the close lingers so that the client's upload in flight does not reset the response.

/** Envoy's delayed_close_timeout default: how long a closing connection keeps reading. */
export const DELAYED_CLOSE_MS = 1000;

/** True when the request declared a body that has not all arrived yet. */
export function bodyPending(req: IncomingMessage, hasBody: boolean): boolean {
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
