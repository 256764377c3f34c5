// Which JSON numbers a double may stand for. A token is kept as a double only when the double's
// shortest decimal form has the token's exact value (1.0 and 1e0 are 1; 0.1 is 0.1), and only
// when it is not an integer past Number.MAX_SAFE_INTEGER (there, neighbouring ids collapse).
import { ExactNumber } from './json-value';

// Up to 15 digits an integer token is always a safe double: no need to look closer.
const SHORT_INTEGER = /^-?\d{1,15}$/;

/** A number token (JSON grammar, already checked) as a double when that is exact, else an ExactNumber. */
export function numberFromToken(token: string): number | ExactNumber {
  if (SHORT_INTEGER.test(token)) return Number(token);
  const n = Number(token);
  const decimal = decimalForm(token);
  if (!Number.isFinite(n)) return new ExactNumber(token, decimal);
  if (Number.isInteger(n) && Math.abs(n) > Number.MAX_SAFE_INTEGER) return new ExactNumber(token, decimal);
  if (decimal !== decimalForm(String(n))) return new ExactNumber(token, decimal);
  return n;
}

/**
 * A number's value written one way only: `-` when negative, the significant digits without
 * leading or trailing zeros, `e` and the exponent (`1.50e2` → `15e1`); zero, of either sign, is `0`.
 * Reads JSON's number grammar and String(n)'s (which adds `+` to exponents).
 */
export function decimalForm(text: string): string {
  let i = 0;
  const negative = text.charCodeAt(0) === 0x2d; /* - */
  if (negative) i = 1;
  const intStart = i;
  while (isDigit(text.charCodeAt(i))) i++;
  let digits = text.slice(intStart, i);
  let fracLength = 0;
  if (text.charCodeAt(i) === 0x2e /* . */) {
    const fracStart = ++i;
    while (isDigit(text.charCodeAt(i))) i++;
    fracLength = i - fracStart;
    digits += text.slice(fracStart, i);
  }
  let exponentText = '0';
  if (i < text.length) {
    // [eE][+-]?digits
    i++;
    const sign = text[i] === '-' ? '-' : '';
    if (text[i] === '+' || text[i] === '-') i++;
    exponentText = sign + text.slice(i);
  }
  let first = 0;
  while (first < digits.length && digits.charCodeAt(first) === 0x30) first++;
  if (first === digits.length) return '0';
  let last = digits.length;
  while (digits.charCodeAt(last - 1) === 0x30) last--;
  const trailingZeros = digits.length - last;
  return `${negative ? '-' : ''}${digits.slice(first, last)}e${addExponent(exponentText, trailingZeros - fracLength)}`;
}

// Exponents are arbitrary digit strings; past 15 digits a double would round them, so BigInt.
function addExponent(exponentText: string, shift: number): string {
  if (exponentText.length <= 16) return String(Number(exponentText) + shift);
  return String(BigInt(exponentText) + BigInt(shift));
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
