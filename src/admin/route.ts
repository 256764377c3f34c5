// What an admin route is and answers, shared by the server and the route tables it mounts.
import type * as http from 'node:http';

export type Handler = (url: URL, req: http.IncomingMessage) => Promise<Reply> | Reply;

export interface AdminRoute {
  /** State-changing: POST only, and refused when the request comes from a foreign page. */
  readonly post: boolean;
  /**
   * Serves the service's own traffic (request headers, response bodies): refused, like a state
   * change, when Host or Origin names another server, so a DNS-rebound page cannot read it.
   */
  readonly private?: boolean;
  readonly help: string;
  readonly handle: Handler;
}

export interface Reply {
  status?: number;
  type?: string;
  /** Sent besides content-type and cache-control. */
  headers?: Readonly<Record<string, string>>;
  body: string;
}

export const json = (value: unknown, status = 200): Reply => ({ status, type: 'application/json', body: JSON.stringify(value, null, 2) + '\n' });
export const text = (body: string, status = 200): Reply => ({ status, type: 'text/plain; charset=UTF-8', body });

export async function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The query's parameters, then a urlencoded form body's (a form's fields after the URL's). */
export async function requestParams(url: URL, req: http.IncomingMessage, limit = 64 * 1024): Promise<URLSearchParams> {
  const params = new URLSearchParams(url.search);
  const body = await readBody(req, limit);
  if (body && (req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) {
    for (const [k, v] of new URLSearchParams(body)) params.append(k, v);
  }
  return params;
}
