// The Date line of responses that carry none, as node:http adds it: rebuilt at most once a second.

let cachedSecond = -1;
let cachedLine = '';

export function dateLine(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedLine = `Date: ${new Date(second * 1000).toUTCString()}\r\n`;
  }
  return cachedLine;
}
