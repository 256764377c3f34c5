// What a response head says about its own framing, read as each header line is written (the
// same fields node:http looks at: Connection, Content-Length, Transfer-Encoding, Date, Trailer).

export class HeadFlags {
  connection = false;
  connectionClose = false;
  contentLength = false;
  transferEncoding = false;
  chunked = false;
  date = false;
  trailer = false;
}

const CLOSE = /(?:^|\W)close(?:$|\W)/i;
const CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;

export function scanHeader(f: HeadFlags, name: string, value: string): void {
  switch (name.length) {
    case 4:
      if (name.toLowerCase() === 'date') f.date = true;
      return;
    case 7:
      if (name.toLowerCase() === 'trailer') f.trailer = true;
      return;
    case 10:
      if (name.toLowerCase() === 'connection') {
        f.connection = true;
        if (CLOSE.test(value)) f.connectionClose = true;
      }
      return;
    case 14:
      if (name.toLowerCase() === 'content-length') f.contentLength = true;
      return;
    case 17:
      if (name.toLowerCase() === 'transfer-encoding') {
        f.transferEncoding = true;
        if (CHUNKED.test(value)) f.chunked = true;
      }
      return;
  }
}
