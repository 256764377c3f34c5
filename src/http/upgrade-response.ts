import { type IncomingMessage, STATUS_CODES, ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'node:net';
import { lingeringClose } from './early-response';
import type { HeaderMap } from './headers';

// What an upgrade request's socket is answered with. Node's server lets go of the socket at an
// Upgrade request and gives no response object; Envoy's HTTP/1 codec reads everything after such a
// request as upgrade payload, so whatever the answer (but a 101), the connection ends after it.

/**
 * A response object bound to the upgrade request's socket, for every answer but a 101, so that
 * local replies and relayed refusals are written exactly as on the normal path (sendLocalReply,
 * request validation, Node's framing). It says `connection: close` and the socket closes after it,
 * lingering as Envoy's delayed close does, so that bytes the client sent early do not reset it.
 * Node emits no 'drain' on such a response: writers wait for the socket's.
 */
export function closingResponse(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  lingeringClose(socket);
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  return res;
}

/** Releases the socket from a response that will not be used (the upgrade went through). */
export function releaseSocket(res: ServerResponse, socket: Socket): void {
  if (res.socket === socket) res.detachSocket(socket);
}

/**
 * The head of a 101 answer as it goes on the wire; headers Node would refuse to write (a name or
 * value that is not a valid field) are left out rather than let them break the framing.
 */
export function switchingProtocolsHead(headers: HeaderMap): string {
  let head = `HTTP/1.1 101 ${STATUS_CODES[101]}\r\n`;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) if (validField(name, v)) head += `${name}: ${v}\r\n`;
  }
  return `${head}\r\n`;
}

function validField(name: string, value: string): boolean {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}
