import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

// Just enough RFC 6455 for tests: the opening handshake (Sec-WebSocket-Key → Sec-WebSocket-Accept)
// and data frames, masked from client to server, unmasked back. Node 20 has no WebSocket server.

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OPCODE = { text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

export interface Frame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly payload: Buffer;
}

/** One frame on the wire; `mask` for frames a client sends. */
export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + ext);
  const body = Buffer.from(payload);
  xorMask(body, key);
  return Buffer.concat([head, body]);
}

/** XORs `data` with the 4-byte `key` in place, a word at a time where it can (tests move MiBs). */
function xorMask(data: Buffer, key: Buffer): void {
  let i = 0;
  if (data.byteOffset % 4 === 0 && data.length >= 64) {
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length >>> 2);
    const k = new Uint32Array(new Uint8Array([key[0]!, key[1]!, key[2]!, key[3]!]).buffer)[0]!;
    for (let w = 0; w < words.length; w++) words[w] ^= k;
    i = words.length * 4;
  }
  for (; i < data.length; i++) data[i] = data[i]! ^ key[i & 3]!;
}

/** Frames out of a byte stream, in order; unmasks what is masked. */
export class FrameReader {
  #chunks: Buffer[] = [];
  #size = 0;

  push(chunk: Buffer): Frame[] {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    const out: Frame[] = [];
    for (;;) {
      const frame = this.#next();
      if (frame === null) return out;
      out.push(frame);
    }
  }

  #next(): Frame | null {
    if (this.#size < 2) return null;
    const peek = this.#peek(Math.min(this.#size, 14));
    const masked = (peek[1]! & 0x80) !== 0;
    const len7 = peek[1]! & 0x7f;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const headLen = 2 + ext + (masked ? 4 : 0);
    if (peek.length < headLen) return null;
    const len = ext === 0 ? len7 : ext === 2 ? peek.readUInt16BE(2) : Number(peek.readBigUInt64BE(2));
    if (this.#size < headLen + len) return null;
    const all = this.#take(headLen + len);
    // A copy of its own: aligned for xorMask, and not sharing memory with what follows.
    const payload = Buffer.from(all.subarray(headLen));
    if (masked) xorMask(payload, all.subarray(2 + ext, headLen));
    return { fin: (all[0]! & 0x80) !== 0, opcode: all[0]! & 0x0f, payload };
  }

  #peek(n: number): Buffer {
    if (this.#chunks[0]!.length >= n) return this.#chunks[0]!;
    return Buffer.concat(this.#chunks).subarray(0, n);
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    return all.subarray(0, n);
  }
}

/** An upgrade request as the WebSocket server saw it. */
export interface SeenUpgrade {
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
}

export interface WsServerOptions {
  /** Answer an upgrade with something else than a 101 (status, body), or never (`'hang'`). */
  readonly refuse?: (req: http.IncomingMessage) => { status: number; body: string } | 'hang' | null;
  /** Extra headers on the 101. */
  readonly acceptHeaders?: Record<string, string>;
  /** Serve over TLS with this certificate. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/**
 * A WebSocket echo server on 127.0.0.1: every data message comes back as it was sent, pings get
 * pongs, a close is answered and ends the connection. It honours back-pressure: while its writes
 * are not drained it reads no more. Plain requests get a 200 "plain" (to tell them apart).
 */
export interface WsServer {
  readonly port: number;
  readonly upgrades: SeenUpgrade[];
  /** Plain (non-upgrade) requests it answered. */
  readonly plainRequests: number;
  /** Tunnelled sockets open right now. */
  readonly open: ReadonlySet<Duplex>;
  /** Payload bytes received over all tunnels. */
  readonly bytesReceived: number;
  close(): Promise<void>;
}

export async function startWsServer(o: WsServerOptions = {}): Promise<WsServer> {
  const open = new Set<Duplex>();
  const all = new Set<Socket>();
  const state = { plainRequests: 0, bytesReceived: 0 };
  const upgrades: SeenUpgrade[] = [];
  const plain = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    state.plainRequests++;
    res.end('plain');
  };
  const server = o.tls ? https.createServer({ cert: o.tls.cert, key: o.tls.key }, plain) : http.createServer(plain);
  server.on(o.tls ? 'secureConnection' : 'connection', (s: Socket) => {
    all.add(s);
    s.on('close', () => all.delete(s));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    upgrades.push({ url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    const refusal = o.refuse?.(req) ?? null;
    if (refusal === 'hang') return;
    if (refusal !== null) {
      socket.end(`HTTP/1.1 ${refusal.status} ${http.STATUS_CODES[refusal.status]}\r\ncontent-length: ${Buffer.byteLength(refusal.body)}\r\nx-refused: yes\r\n\r\n${refusal.body}`);
      return;
    }
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const extra = Object.entries(o.acceptHeaders ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${acceptFor(key)}\r\n${extra}\r\n`);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    // Node's HTTP server keeps sockets half-open; a WebSocket peer that got a FIN is done.
    socket.once('end', () => socket.end());
    const reader = new FrameReader();
    const onBytes = (chunk: Buffer): void => {
      for (const f of reader.push(chunk)) {
        if (f.opcode === OPCODE.close) {
          socket.end(encodeFrame(OPCODE.close, f.payload, false));
          return;
        }
        state.bytesReceived += f.payload.length;
        const reply = f.opcode === OPCODE.ping ? encodeFrame(OPCODE.pong, f.payload, false) : encodeFrame(f.opcode, f.payload, false);
        if (!socket.write(reply)) {
          socket.pause();
          socket.once('drain', () => socket.resume());
        }
      }
    };
    if (head.length > 0) onBytes(head);
    socket.on('data', onBytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    upgrades,
    open,
    get plainRequests() {
      return state.plainRequests;
    },
    get bytesReceived() {
      return state.bytesReceived;
    },
    close: async () => {
      for (const s of open) s.destroy();
      for (const s of all) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What an upgrade request got: a tunnel (101) or a plain response. */
export type WsHandshake =
  | { readonly kind: 'upgraded'; readonly status: number; readonly headers: http.IncomingHttpHeaders; readonly key: string; readonly client: WsClient }
  | { readonly kind: 'response'; readonly status: number; readonly headers: http.IncomingHttpHeaders; readonly body: string };

/**
 * Sends a WebSocket opening handshake through `port` (Node's HTTP client, which hands over the
 * socket on a 101); `headers` are added to the request.
 */
export function wsConnect(port: number, path = '/', headers: Record<string, string> = {}, timeoutMs = 5000): Promise<WsHandshake> {
  const key = randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path, agent: false,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13', ...headers },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no handshake answer in ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('upgrade', (res, socket, head) => {
      clearTimeout(timer);
      resolve({ kind: 'upgraded', status: res.statusCode ?? 0, headers: res.headers, key, client: new WsClient(socket, head) });
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ kind: 'response', status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** The client end of a tunnel: sends masked frames, reads frames in order. */
export class WsClient {
  readonly #reader = new FrameReader();
  readonly #frames: Frame[] = [];
  #waiter: (() => void) | null = null;
  #closed = false;
  readonly closed: Promise<void>;

  constructor(readonly socket: Socket, head: Buffer) {
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.#closed = true;
      this.#waiter?.();
      resolve();
    }));
    if (head.length > 0) this.#take(head);
    socket.on('data', (c: Buffer) => this.#take(c));
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Sends one message; false when the socket asks to wait for 'drain'. */
  send(payload: Buffer | string, opcode: number = typeof payload === 'string' ? OPCODE.text : OPCODE.binary): boolean {
    return this.socket.write(encodeFrame(opcode, Buffer.isBuffer(payload) ? payload : Buffer.from(payload), true));
  }

  /** The next frame, or an error when none comes in `timeoutMs` or the socket closes first. */
  async next(timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (this.#frames.length === 0) {
      if (this.#closed) throw new Error('socket closed before a frame came');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
    return this.#frames.shift()!;
  }

  close(): void {
    this.socket.destroy();
  }

  #take(chunk: Buffer): void {
    this.#frames.push(...this.#reader.push(chunk));
    if (this.#frames.length > 0) this.#waiter?.();
  }
}
