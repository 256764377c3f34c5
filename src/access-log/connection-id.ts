import type { DownstreamRequest } from '../http/downstream';

// %CONNECTION_ID%: a number per downstream connection, the same on every request it carries, so
// that lines can be grouped by connection. Numbered on first use, held only while it lives.

const IDS = new WeakMap<object, number>();
let next = 0;

export function idOf(connection: object): number {
  let id = IDS.get(connection);
  if (id === undefined) IDS.set(connection, (id = ++next));
  return id;
}

/** An HTTP/2 stream's connection is its session (its `socket` is a per-stream proxy). */
export function connectionId(req: DownstreamRequest): number {
  return idOf('stream' in req ? req.stream.session ?? req : req.socket);
}
