import type { ServerResponse } from 'node:http';

/** Bodies Envoy sends for its own replies, so clients and scripts see the same text. */
export const LOCAL_REPLY_BODIES = {
  noHealthyUpstream: 'no healthy upstream',
  connectFailure: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
  reset: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
  protocolError: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error',
  timeout: 'upstream request timeout',
  overflow: 'upstream connect error or disconnect/reset before headers. reset reason: overflow',
} as const;

/** Answers from the proxy itself: status, text body, and the few headers Envoy sets. */
export function sendLocalReply(res: ServerResponse, status: number, body: string, serverName: string, extra?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | number> = { server: serverName, ...extra };
  if (body) {
    headers['content-type'] = 'text/plain';
    headers['content-length'] = Buffer.byteLength(body);
  } else {
    headers['content-length'] = 0;
  }
  res.writeHead(status, headers);
  res.end(body);
}
