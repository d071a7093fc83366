// How text that came from outside (a model file, a tokenizer, a task file, a webview message) appears
// in a message: quoted, shortened, and with every character that a terminal, the output channel or a
// notification would act on instead of show written as an escape. An architecture name holding
// ESC [2J would otherwise clear the terminal of whoever reads the error; a U+202E would reverse it.
// Pure: used by the engine, the host, the CLI and the webview alike.

/** Characters written as escapes: C0 controls, DEL, C1 controls, bidi overrides and isolates, line/paragraph separators, BOM. */
// eslint-disable-next-line no-control-regex -- matching control characters is this regex's job
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function escapeOne(c: string): string {
  switch (c) {
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
    default: return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  }
}

/** `s` with control, direction-changing and lone-surrogate characters written as `\n`, `\t` or `\uXXXX`; everything else as is. */
export function escapeControls(s: string): string {
  return s.replace(UNSAFE, escapeOne);
}

const UNSAFE_ANY = new RegExp(UNSAFE.source);

/** True when `s` holds a character escapeControls would escape. */
export function hasControls(s: string): boolean {
  return UNSAFE_ANY.test(s);
}

/**
 * `s` as it may appear in a one-line message: in double quotes, `"` and `\` escaped as in JSON, unsafe
 * characters escaped, and at most `max` characters of it shown (then `…` and the full length).
 */
export function quote(s: string, max = 80): string {
  let shown = s;
  let more = '';
  if (s.length > max) {
    // Never cut a surrogate pair in half.
    const end = /[\ud800-\udbff]/.test(s[max - 1] ?? '') ? max - 1 : max;
    shown = s.slice(0, end);
    more = `…(${s.length} characters)`;
  }
  return `"${escapeControls(shown.replace(/["\\]/g, (c) => `\\${c}`))}"${more}`;
}

/** A short description of any JSON-like value for a message: strings quoted, numbers as they are, containers by kind and size. */
export function describeValue(v: unknown, max = 40): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return quote(v, max);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === 'object' ? 'an object' : typeof v;
}

/** A name from a file (a key, a tensor, a token) for a message: as it is when it is short printable ASCII without spaces or quotes, else quote(). */
export function shownName(s: string, max = 80): string {
  return s.length > 0 && s.length <= max && /^[\x21-\x7e]+$/.test(s) && !/["'`\\]/.test(s) ? s : quote(s, max);
}

/** Any value as JSON text for a message, escaped, at most `max` characters of it (then `…`). */
export function jsonForMessage(v: unknown, max = 80): string {
  let t: string;
  try {
    t = JSON.stringify(v) ?? String(v);
  } catch {
    t = String(v);
  }
  return escapeControls(t.length > max ? `${t.slice(0, max)}…` : t);
}

/**
 * An error as the one line a message shows: its message without the class name, escaped (errors quote
 * file names and JSON.parse repeats the bad text). Escaping twice changes nothing, so an engine error's
 * text, escaped in the worker, passes through the host as it is. The one errorText of the project.
 */
export function errorText(e: unknown): string {
  return escapeControls(e instanceof Error ? e.message : String(e));
}
