import * as net from 'node:net';
import * as tls from 'node:tls';
import { ClientHelloReader, DEFAULT_MAX_CLIENT_HELLO_BYTES, inspectClientHello } from '../../src/listener/client-hello';

// The ClientHello reader (Envoy's tls_inspector): hellos captured from a real tls.connect, fed
// whole, byte by byte and re-split into records; plain text and garbage; truncated, oversized
// and hostile hellos built by hand.

/** The first bytes a real Node TLS client sends. */
async function capture(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      server.once('connection', (s) => {
        s.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          if (got.length >= 5 && got.length >= 5 + got.readUInt16BE(3)) {
            resolve(got);
            s.destroy();
          }
        });
      });
      const c = tls.connect({ ...options, host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, rejectUnauthorized: false });
      c.on('error', () => {});
      setTimeout(() => reject(new Error('no ClientHello captured')), 3000).unref();
    });
  } finally {
    server.close();
  }
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b]);
const vec8 = (b: Buffer) => Buffer.concat([Buffer.from([b.length]), b]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), vec16(data)]);
const sni = (...names: string[]) => ext(0, vec16(Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([0]), vec16(Buffer.from(n, 'latin1'))])))));
const alpn = (...protos: string[]) => ext(16, vec16(Buffer.concat(protos.map((p) => vec8(Buffer.from(p))))));

interface HelloParts {
  readonly version?: Buffer;
  readonly sessionId?: Buffer;
  readonly suites?: Buffer;
  readonly extensions?: readonly Buffer[] | null;
  readonly type?: number;
  /** Bytes in place of the extensions block. */
  readonly tail?: Buffer;
}

/** A handshake message holding a ClientHello. */
function handshake(p: HelloParts = {}): Buffer {
  const body = Buffer.concat([
    p.version ?? Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    vec8(p.sessionId ?? Buffer.alloc(32, 1)),
    p.suites ?? vec16(Buffer.from([0x13, 0x01, 0xc0, 0x2f])),
    vec8(Buffer.from([0])),
    p.tail ?? (p.extensions === null ? Buffer.alloc(0) : vec16(Buffer.concat(p.extensions ?? [sni('svc.local'), alpn('h2')]))),
  ]);
  return Buffer.concat([Buffer.from([p.type ?? 1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

/** `message` in TLS records of at most `size` bytes each. */
function records(message: Buffer, size = 16384): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < message.length; i += size) {
    const frag = message.subarray(i, i + size);
    out.push(Buffer.from([0x16, 3, 1]), u16(frag.length), frag);
  }
  return Buffer.concat(out);
}

/** The handshake message inside captured records. */
function unframe(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i + 5 <= bytes.length; ) {
    const len = bytes.readUInt16BE(i + 3);
    parts.push(bytes.subarray(i + 5, i + 5 + len));
    i += 5 + len;
  }
  return Buffer.concat(parts);
}

let withSni: Buffer;
let bare: Buffer;

beforeAll(async () => {
  withSni = await capture({ servername: 'api.example.com', ALPNProtocols: ['h2', 'http/1.1'] });
  bare = await capture({});
});

describe('hellos from a real TLS client', () => {
  test('SNI and ALPN are read; without them, null and none', () => {
    expect(inspectClientHello(withSni)).toEqual({ kind: 'tls', serverName: 'api.example.com', alpn: ['h2', 'http/1.1'] });
    expect(inspectClientHello(bare)).toEqual({ kind: 'tls', serverName: null, alpn: [] });
  });

  test('fed byte by byte: need_more until the last byte, then the answer, then the same answer again', () => {
    const r = new ClientHelloReader();
    for (let i = 0; i < withSni.length - 1; i++) expect(r.feed(withSni.subarray(i, i + 1))).toEqual({ kind: 'need_more' });
    const done = r.feed(withSni.subarray(withSni.length - 1));
    expect(done).toMatchObject({ kind: 'tls', serverName: 'api.example.com' });
    expect(r.feed(Buffer.from('more'))).toBe(done);
  });

  test('the message split over many small records reads the same', () => {
    for (const size of [1, 3, 7, 100]) {
      expect(inspectClientHello(records(unframe(withSni), size))).toEqual({ kind: 'tls', serverName: 'api.example.com', alpn: ['h2', 'http/1.1'] });
    }
  });

  test('every truncation needs more; bytes after the hello do not matter', () => {
    for (let n = 0; n < withSni.length; n++) expect(inspectClientHello(withSni.subarray(0, n)).kind).toBe('need_more');
    expect(inspectClientHello(Buffer.concat([withSni, Buffer.from('GET / HTTP/1.1\r\n')])).kind).toBe('tls');
  });
});

describe('not TLS', () => {
  test.each([
    ['an HTTP/1.1 request', Buffer.from('GET / HTTP/1.1\r\nhost: a\r\n\r\n')],
    ['the HTTP/2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
    ['an SSLv2-style hello', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])],
    ['a record of another version', Buffer.from([0x16, 0x02, 0x00, 0x00, 0x10])],
    ['an empty record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
    ['a record longer than 2^14', Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01])],
    ['another handshake message (ServerHello)', records(handshake({ type: 2 }))],
    ['an SSL 3.0 hello', records(handshake({ version: Buffer.from([3, 0]) }))],
    ['a session id of 33 bytes', records(handshake({ sessionId: Buffer.alloc(33) }))],
    ['an odd cipher suite list', records(handshake({ suites: vec16(Buffer.from([1, 2, 3])) }))],
    ['an extensions block longer than the message', records(handshake({ tail: Buffer.concat([u16(100), sni('a.test')]) }))],
    ['bytes after the extensions block', records(handshake({ tail: Buffer.concat([vec16(sni('a.test')), Buffer.from([0])]) }))],
    ['an extension longer than the block', records(handshake({ extensions: [Buffer.concat([u16(99), u16(500), Buffer.alloc(3)])] }))],
    ['a duplicate extension', records(handshake({ extensions: [alpn('h2'), alpn('h2')] }))],
    ['two SNI names', records(handshake({ extensions: [sni('a.test', 'b.test')] }))],
    ['an empty SNI name', records(handshake({ extensions: [sni('')] }))],
    ['a NUL in the SNI name', records(handshake({ extensions: [sni('a\u0000.test')] }))],
    ['an SNI name over 255 bytes', records(handshake({ extensions: [sni('a'.repeat(256))] }))],
  ])('%s', (_label, bytes) => {
    expect(inspectClientHello(bytes)).toEqual({ kind: 'not_tls' });
  });

  test('garbage is refused at its first byte when that byte is not a handshake record', () => {
    const r = new ClientHelloReader();
    expect(r.feed(Buffer.from([0x47]))).toEqual({ kind: 'not_tls' });
  });
});

describe('tolerated', () => {
  test('a malformed ALPN extension hides ALPN only (Envoy ignores it)', () => {
    const broken = ext(16, Buffer.from([0, 3, 2, 0x68]));
    expect(inspectClientHello(records(handshake({ extensions: [sni('svc.local'), broken] })))).toEqual({ kind: 'tls', serverName: 'svc.local', alpn: [] });
    expect(inspectClientHello(records(handshake({ extensions: [sni('svc.local'), ext(16, vec16(Buffer.from([0])))] })))).toMatchObject({ alpn: [] });
  });

  test('no extensions at all', () => {
    expect(inspectClientHello(records(handshake({ extensions: null })))).toEqual({ kind: 'tls', serverName: null, alpn: [] });
  });

  test('a non-ASCII SNI byte stays distinct (latin1), never equal to an ASCII name', () => {
    const r = inspectClientHello(records(handshake({ extensions: [sni('caf\u00e9.test')] })));
    expect(r).toEqual({ kind: 'tls', serverName: 'caf\u00e9.test', alpn: [] });
  });
});

describe('size bound', () => {
  const padded = (n: number) => handshake({ extensions: [sni('big.test'), ext(21, Buffer.alloc(n))] });

  test('a hello declaring more than the bound is too large at once', () => {
    const msg = padded(DEFAULT_MAX_CLIENT_HELLO_BYTES);
    expect(inspectClientHello(records(msg).subarray(0, 10))).toEqual({ kind: 'too_large' });
  });

  test('a hello that is still incomplete when the bound is reached is too large', () => {
    // Declared small enough, but in one-byte records: six bytes on the wire per byte of hello.
    const msg = padded(4000);
    const wire = records(msg, 1);
    const r = new ClientHelloReader();
    let last = r.feed(wire.subarray(0, 1000));
    for (let i = 1000; i < wire.length && last.kind === 'need_more'; i += 1000) last = r.feed(wire.subarray(i, i + 1000));
    expect(last).toEqual({ kind: 'too_large' });
  });

  test('a 20 KiB hello over two records fits a 64 KiB bound (older Envoy) but not the default', () => {
    const wire = records(padded(20 * 1024));
    expect(inspectClientHello(wire, 64 * 1024)).toMatchObject({ kind: 'tls', serverName: 'big.test' });
    expect(inspectClientHello(wire)).toEqual({ kind: 'too_large' });
  });

  test('memory follows what arrived, not what was declared', () => {
    const head = records(padded(60 * 1024)).subarray(0, 9);
    const before = process.memoryUsage().arrayBuffers;
    const readers = Array.from({ length: 1000 }, () => new ClientHelloReader(64 * 1024));
    for (const r of readers) expect(r.feed(head)).toEqual({ kind: 'need_more' });
    // 1,000 pending hellos declaring 60 KiB each hold about 512 bytes each, not 60 MiB in all.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(4 * 1024 * 1024);
    expect(readers).toHaveLength(1000);
  });
});
