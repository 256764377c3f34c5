// PUT /snapshot bodies are usually JSON, and the YAML parser reads JSON at a few hundred KB a
// second: a 4 MiB body would block the control plane for many seconds. JSON.parse is ~100×
// faster but takes the last of duplicate keys silently, where the YAML path refuses them; so a
// linear scan for duplicate keys runs first, and any text that is not plain JSON, or repeats a
// key, goes the YAML way (with its line-numbered errors).

/** The parsed document when `text` is JSON without duplicate keys; undefined otherwise. */
export function parseStrictJson(text: string): unknown {
  const first = /\S/.exec(text)?.[0];
  if (first !== '{' && first !== '[') return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  return hasDuplicateKeys(text) ? undefined : doc;
}

/** For text JSON.parse accepted: does any object repeat a key? */
function hasDuplicateKeys(text: string): boolean {
  // One entry per open container: a Set of keys for an object, null for an array.
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] instanceof Set;
    } else if (c === 0x22 /* " */) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      if (expectKey) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        const keys = stack[stack.length - 1] as Set<string>;
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
    }
  }
  return false;
}
