import * as http2 from 'node:http2';
import { inspectHttp } from '../../src/listener/http-inspector';
import { bootstrap, cluster, listener } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';

// http_inspector on a plaintext listener: the first bytes name the application protocol, so
// filter_chain_match.application_protocols picks a chain for HTTP/1.1, HTTP/1.0 or h2c.

type Json = Record<string, unknown>;

test('the inspector reads the preface or the request line, and waits for a whole one', () => {
  expect(inspectHttp(Buffer.from('GET / HTTP/1.1\r\nhost: a\r\n'))).toEqual({ done: true, value: 'http/1.1' });
  expect(inspectHttp(Buffer.from('GET /x HTTP/1.0\r\n'))).toEqual({ done: true, value: 'http/1.0' });
  expect(inspectHttp(Buffer.from('GET / HTTP/1.1'))).toEqual({ done: false });
  expect(inspectHttp(Buffer.from('PRI * HTTP/2.0\r\n'))).toEqual({ done: false });
  expect(inspectHttp(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))).toEqual({ done: true, value: 'h2c' });
  expect(inspectHttp(Buffer.from('HELLO there\r\n'))).toEqual({ done: true, value: null });
});

function answering(body: string): Json {
  return { name: body, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: body } } }] }] };
}

function chain(body: string, protocols: string[] | null): Json {
  const c = (listener(answering(body)).filter_chains as Json[])[0]!;
  return protocols ? { ...c, name: body, filter_chain_match: { application_protocols: protocols } } : { ...c, name: body };
}

let p: TestProxy | null = null;
afterEach(async () => {
  await p?.stop();
  p = null;
});

async function proxy(inspector: boolean): Promise<TestProxy> {
  const l = { ...listener(answering('unused')), filter_chains: [chain('one-one', ['http/1.1']), chain('h2c', ['h2c']), chain('other', null)] };
  p = await startProxy(bootstrap({
    listeners: [inspector ? { ...l, listener_filters: [{ name: 'envoy.filters.listener.http_inspector' }] } : l],
    clusters: [cluster('unused', [1])],
  }));
  return p;
}

function h2Body(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const stream = session.request({ ':path': '/' });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      session.close();
      resolve(Buffer.concat(chunks).toString());
    });
    stream.on('error', reject);
  });
}

test('with http_inspector, HTTP/1.1 and h2c each reach the chain their protocol names', async () => {
  const px = await proxy(true);
  expect((await fetchText(`${px.url}/`)).body).toBe('one-one');
  expect(await h2Body(px.url)).toBe('h2c');
});

test('without it, plaintext connections have no application protocol and take the chain naming none', async () => {
  const px = await proxy(false);
  expect((await fetchText(`${px.url}/`)).body).toBe('other');
  expect(await h2Body(px.url)).toBe('other');
});
