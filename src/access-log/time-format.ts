// %START_TIME(...)% as Envoy formats it: strftime's specifiers in UTC, plus Envoy's %s (epoch
// seconds), %f and %1f…%9f (fraction of the second, 9 digits by default) and absl's %E#S / %E*S
// (seconds with # or all fraction digits). With no format, ISO 8601 with milliseconds, UTC.

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** Envoy's default: `2016-04-15T20:17:00.310Z`. */
export function isoMillis(epochMs: number): string {
  return new Date(Math.floor(epochMs)).toISOString();
}

/** A formatter for one START_TIME argument, compiled once. */
export function timeFormatter(format: string): (epochMs: number) => string {
  if (format === '') return isoMillis;
  return (epochMs) => strftime(format, epochMs);
}

function strftime(format: string, epochMs: number): string {
  const d = new Date(Math.floor(epochMs));
  // Nanoseconds within the second, as far as the clock gives them (µs from performance.now()).
  const nanos = Math.floor((epochMs - Math.floor(epochMs / 1000) * 1000) * 1e6);
  let out = '';
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!;
    if (c !== '%' || i + 1 >= format.length) {
      out += c;
      continue;
    }
    let spec = format[++i]!;
    let digits = 9;
    if (spec >= '1' && spec <= '9' && format[i + 1] === 'f') {
      digits = Number(spec);
      spec = format[++i]!;
    } else if (spec === 'E' && (format[i + 1] === '*' || (format[i + 1]! >= '0' && format[i + 1]! <= '9')) && format[i + 2] === 'S') {
      const n = format[i + 1]!;
      i += 2;
      const seconds = pad(d.getUTCSeconds());
      const fraction = String(nanos).padStart(9, '0');
      out += n === '*' ? (nanos === 0 ? seconds : `${seconds}.${fraction.replace(/0+$/, '')}`) : n === '0' ? seconds : `${seconds}.${fraction.slice(0, Number(n))}`;
      continue;
    }
    out += specifier(spec, d, epochMs, nanos, digits);
  }
  return out;
}

function specifier(spec: string, d: Date, epochMs: number, nanos: number, digits: number): string {
  switch (spec) {
    case 'Y': return String(d.getUTCFullYear());
    case 'C': return pad(Math.floor(d.getUTCFullYear() / 100));
    case 'y': return pad(d.getUTCFullYear() % 100);
    case 'm': return pad(d.getUTCMonth() + 1);
    case 'd': return pad(d.getUTCDate());
    case 'e': return String(d.getUTCDate()).padStart(2, ' ');
    case 'H': return pad(d.getUTCHours());
    case 'I': return pad(d.getUTCHours() % 12 || 12);
    case 'M': return pad(d.getUTCMinutes());
    case 'S': return pad(d.getUTCSeconds());
    case 'p': return d.getUTCHours() < 12 ? 'AM' : 'PM';
    case 'j': return pad(dayOfYear(d), 3);
    case 'a': return DAYS[d.getUTCDay()]!.slice(0, 3);
    case 'A': return DAYS[d.getUTCDay()]!;
    case 'b': case 'h': return MONTHS[d.getUTCMonth()]!.slice(0, 3);
    case 'B': return MONTHS[d.getUTCMonth()]!;
    case 'u': return String(d.getUTCDay() || 7);
    case 'w': return String(d.getUTCDay());
    case 'F': return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    case 'T': return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    case 'R': return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
    case 'D': return `${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCFullYear() % 100)}`;
    case 'z': return '+0000';
    case 'Z': return 'UTC';
    case 's': return String(Math.floor(epochMs / 1000));
    case 'f': return String(nanos).padStart(9, '0').slice(0, digits);
    case 't': return '\t';
    case '%': return '%';
    default: return `%${spec}`;
  }
}

function dayOfYear(d: Date): number {
  return Math.floor((Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
}
