import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

// The example's orders service, in two versions. Both put a timestamp and a random id in every
// body (noise: two runs of one version differ there too). v2 differs from v1 in exactly three
// ways: an order's `total` now includes 20 % tax (GET /orders/{id}), the `x-cache-status` header
// is renamed `x-cache`, and GET /orders/{id}/invoice fails with 500 (the rare path).

export type OrdersVersion = 'v1' | 'v2';

export interface OrdersService {
  readonly port: number;
  close(): Promise<void>;
}

const ITEMS = ['keyboard', 'mouse', 'monitor', 'dock', 'cable', 'headset', 'webcam', 'lamp'];

/** Order `id` is the same in both versions: its contents derive from the id alone. */
function order(id: number): { id: number; item: string; qty: number; price: number } {
  return { id, item: ITEMS[id % ITEMS.length]!, qty: 1 + (id % 4), price: 5 + ((id * 37) % 200) + 0.99 };
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

/**
 * Now, to the microsecond: every response, of either version, carries a different one. (A
 * millisecond clock would make responses sent together often agree, and the field's differing
 * rate would then depend on timing instead of on the version.)
 */
function timestamp(): string {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return `${new Date(Math.floor(us / 1000)).toISOString().slice(0, -1)}${String(us % 1000).padStart(3, '0')}Z`;
}

function answer(version: OrdersVersion, method: string, path: string): { status: number; body: unknown } {
  if (method !== 'GET' && method !== 'HEAD') return { status: 405, body: { error: 'method not allowed' } };
  if (path === '/orders') return { status: 200, body: { orders: Array.from({ length: 5 }, (_, i) => order(i + 1)) } };
  const one = /^\/orders\/(\d{1,6})$/.exec(path);
  if (one) {
    const o = order(Number(one[1]));
    const total = version === 'v2' ? round2(o.qty * o.price * 1.2) : round2(o.qty * o.price);
    return { status: 200, body: { ...o, total, currency: 'EUR' } };
  }
  const invoice = /^\/orders\/(\d{1,6})\/invoice$/.exec(path);
  if (invoice) {
    if (version === 'v2') return { status: 500, body: { error: 'invoice renderer unavailable' } };
    return { status: 200, body: { order: Number(invoice[1]), lines: [order(Number(invoice[1]))], paid: true } };
  }
  return { status: 404, body: { error: 'no such order' } };
}

export async function startOrders(version: OrdersVersion, port = 0): Promise<OrdersService> {
  const server = http.createServer((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0]!;
    const { status, body } = answer(version, req.method ?? 'GET', path);
    const text = JSON.stringify({ ...(body as object), generated_at: timestamp(), request_id: randomUUID() });
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      [version === 'v2' ? 'x-cache' : 'x-cache-status']: 'miss',
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
