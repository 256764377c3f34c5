import * as net from 'node:net';
import type { RecordedRequest } from '../harness/upstream';
import { closeAll, jsonReply, rig } from './compare-rig';

// Header names that are also names of Object.prototype's members, on the request path (review
// finding 7, issue 11).

jest.setTimeout(90_000);

afterEach(closeAll);

// Proves: a client request carrying a header named `__proto__` (a valid token) is forwarded and
// answered. Found while probing the comparison's header handling, but not specific to it: with
// no mirror at all the client gets 503 "upstream connect error or disconnect/reset before
// headers. reset reason: connection termination"; `constructor` and `toString` pass.
test('a request header named __proto__ does not turn the answer into a 503', async () => {
  const r = await rig({ primary: { http: jsonReply({ a: 1 }) }, candidate: { http: jsonReply({ a: 1 }) } });
  const ask = (header: string): Promise<string> => new Promise((resolve, reject) => {
    let got = '';
    const c = net.connect(r.proxy.port, '127.0.0.1', () => c.write(`GET /h HTTP/1.1\r\nHost: shop\r\n${header}\r\nconnection: close\r\n\r\n`));
    c.on('data', (d: Buffer) => (got += d.toString('latin1')));
    c.on('close', () => resolve(got.split('\r\n')[0]!));
    c.on('error', reject);
  });
  expect(await ask('constructor: x')).toBe('HTTP/1.1 200 OK');
  expect(await ask('__proto__: x')).toBe('HTTP/1.1 200 OK');
});

// Proves: such headers reach the primary and the shadow as the client sent them: `constructor`
// once with its own value (not Object's constructor function), `__proto__` as a header, repeated
// ones as their separate lines.
test('headers named __proto__ or constructor are forwarded as sent, to the primary and the shadow', async () => {
  const seen: RecordedRequest[] = [];
  const record = (req: RecordedRequest, res: Parameters<ReturnType<typeof jsonReply>>[1]): void => {
    seen.push(req);
    jsonReply({ a: 1 })(req, res);
  };
  const r = await rig({ primary: { http: record }, candidate: { http: record } });
  const answer = await new Promise<string>((resolve, reject) => {
    let got = '';
    const c = net.connect(r.proxy.port, '127.0.0.1', () =>
      c.write('GET /h HTTP/1.1\r\nHost: shop\r\nconstructor: c1\r\n__proto__: p1\r\n__proto__: p2\r\ntoString: t\r\nconnection: close\r\n\r\n'));
    c.on('data', (d: Buffer) => (got += d.toString('latin1')));
    c.on('close', () => resolve(got.split('\r\n')[0]!));
    c.on('error', reject);
  });
  expect(answer).toBe('HTTP/1.1 200 OK');
  await r.report(1);
  expect(seen).toHaveLength(2);
  for (const req of seen) {
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) pairs.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
    const named = (n: string): string[] => pairs.filter(([k]) => k === n).map(([, v]) => v);
    expect([named('constructor'), named('__proto__'), named('tostring')]).toEqual([['c1'], ['p1', 'p2'], ['t']]);
  }
});
