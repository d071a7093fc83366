// The byte-level automaton of one JSON object shape: `{"f1":"…","f2":"…"}` (compact, as JSON.stringify writes it and the task store trains on) with the fields in a fixed
// order, no whitespace, and each value either any JSON string (valid UTF-8,
// escapes \" \\ \/ \b \f \n \r \t \uXXXX, no raw control characters) or one of an enum of strings.
// Every byte sequence it accepts up to DONE is a JSON text that parses to exactly those fields.
//
// It works on bytes, not characters, because tokens are byte strings (Gemma's byte-fallback tokens
// are single bytes of a UTF-8 character). Each state also knows its "closing": the shortest canonical
// bytes from it to DONE, so a generator can always finish the object within a token budget.

import { quote } from '../../common/quote';

/** One field of the object: any string, or one of the given strings. */
export type FieldShape = { name: string; enum?: undefined } | { name: string; enum: string[] };

export interface JsonShape {
  fields: FieldShape[];
}

/** Allowed values are short labels; this bounds the trie's depth. */
const MAX_ENUM_CHARS = 1000;

/** A reject in the transition table. */
export const REJECT = -1;

const enc = new TextEncoder();
const HEX = new Set([...'0123456789abcdefABCDEF'].map((c) => c.charCodeAt(0)));
const ESCAPES = new Set([...'"\\/bfnrtu'].map((c) => c.charCodeAt(0)));
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Checks a shape given by a caller; throws a one-line reason. */
export function validateShape(shape: JsonShape): void {
  if (!Array.isArray(shape.fields) || shape.fields.length === 0) throw new Error('the JSON shape has no fields');
  const names = new Set<string>();
  for (const f of shape.fields) {
    if (typeof f.name !== 'string' || f.name.length === 0) throw new Error('a field name is empty');
    if (names.has(f.name)) throw new Error(`field ${quote(f.name)} appears twice`);
    names.add(f.name);
    if (f.enum !== undefined) {
      if (!Array.isArray(f.enum) || f.enum.length === 0) throw new Error(`field ${quote(f.name)}: the list of allowed values is empty`);
      if (f.enum.some((v) => typeof v !== 'string')) throw new Error(`field ${quote(f.name)}: allowed values must be strings`);
      if (new Set(f.enum).size !== f.enum.length) throw new Error(`field ${quote(f.name)}: an allowed value appears twice`);
      if (f.enum.some((v) => v.length > MAX_ENUM_CHARS)) throw new Error(`field ${quote(f.name)}: an allowed value is longer than ${MAX_ENUM_CHARS} characters`);
    }
  }
}

/** A compiled shape: a deterministic automaton over bytes with a closing cost per state. */
export class JsonAutomaton {
  /** trans[state * 256 + byte] = next state or REJECT. */
  readonly trans: Int32Array;
  /** Bytes of the canonical shortest way from a state to DONE. */
  readonly closeLen: Int32Array;
  readonly start: number;
  readonly done: number;
  readonly states: number;
  private readonly canon: Int16Array;

  constructor(readonly shape: JsonShape) {
    validateShape(shape);
    const b = new Builder();
    this.done = b.newState();
    // Built back to front, so each piece knows the state that follows it.
    let next = b.literal(enc.encode('}'), this.done);
    for (let i = shape.fields.length - 1; i >= 0; i--) {
      const f = shape.fields[i];
      const value = f.enum ? b.enumValue(f.enum, next) : b.stringValue(next);
      const key = `${i === 0 ? '{' : ','}${JSON.stringify(f.name)}:"`;
      next = b.literal(enc.encode(key), value);
    }
    this.start = next;
    this.states = b.count;
    this.trans = b.table();
    this.canon = b.canonTable();
    this.closeLen = new Int32Array(this.states).fill(-1);
    this.closeLen[this.done] = 0;
    for (let s = 0; s < this.states; s++) this.closing(s);
  }

  /** The state after bytes[from, to) from `state`, or REJECT. */
  run(state: number, bytes: Uint8Array, from = 0, to = bytes.length): number {
    let s = state;
    for (let i = from; i < to && s !== REJECT; i++) s = this.trans[s * 256 + bytes[i]];
    return s;
  }

  /** The canonical closing bytes from a state. */
  closingBytes(state: number): Uint8Array {
    const out: number[] = [];
    for (let s = state; s !== this.done; ) {
      const byte = this.canon[s];
      out.push(byte);
      s = this.trans[s * 256 + byte];
    }
    return Uint8Array.from(out);
  }

  private closing(s: number): number {
    // Iterative: walk the canonical path to a state whose length is known, then fill back.
    const path: number[] = [];
    let t = s;
    while (this.closeLen[t] < 0) {
      path.push(t);
      const byte = this.canon[t];
      if (byte < 0) throw new Error(`internal: JSON shape state ${t} has no way to close`);
      t = this.trans[t * 256 + byte];
    }
    let n = this.closeLen[t];
    for (let i = path.length - 1; i >= 0; i--) this.closeLen[path[i]] = ++n;
    return this.closeLen[s];
  }
}

/** Incremental construction of the transition table, with each state's canonical closing byte. */
class Builder {
  private rows: Int32Array[] = [];
  private canon: number[] = [];

  get count(): number {
    return this.rows.length;
  }

  newState(): number {
    this.rows.push(new Int32Array(256).fill(REJECT));
    this.canon.push(-1);
    return this.rows.length - 1;
  }

  private edge(from: number, byte: number, to: number, canonical = false): void {
    this.rows[from][byte] = to;
    if (canonical) this.canon[from] = byte;
  }

  /** States that accept exactly `bytes`, then continue at `next`; returns the first state. */
  literal(bytes: Uint8Array, next: number): number {
    let s = next;
    for (let i = bytes.length - 1; i >= 0; i--) {
      const t = this.newState();
      this.edge(t, bytes[i], s, true);
      s = t;
    }
    return s;
  }

  /** The inside of a JSON string (after its opening quote) up to and including the closing quote. */
  stringValue(next: number): number {
    const normal = this.newState();
    const esc = this.newState();
    // hex[k]: k hex digits of a \u escape still to come.
    const hex = [normal, this.newState(), this.newState(), this.newState(), this.newState()];
    for (let k = 1; k <= 4; k++) for (const h of HEX) this.edge(hex[k], h, hex[k - 1], h === 0x30);
    for (const e of ESCAPES) this.edge(esc, e, e === 0x75 ? hex[4] : normal, e === 0x6e);
    // cont(n): n UTF-8 continuation bytes 80..BF still to come.
    const cont: number[] = [normal];
    for (let n = 1; n <= 3; n++) {
      const s = this.newState();
      for (let byte = 0x80; byte <= 0xbf; byte++) this.edge(s, byte, cont[n - 1], byte === 0x80);
      cont.push(s);
    }
    // The second byte after E0, ED, F0 and F4 has a narrower range (no overlongs, surrogates or > U+10FFFF).
    const narrow = (lo: number, hi: number, then: number): number => {
      const s = this.newState();
      for (let byte = lo; byte <= hi; byte++) this.edge(s, byte, then, byte === lo);
      return s;
    };
    const e0 = narrow(0xa0, 0xbf, cont[1]);
    const ed = narrow(0x80, 0x9f, cont[1]);
    const f0 = narrow(0x90, 0xbf, cont[2]);
    const f4 = narrow(0x80, 0x8f, cont[2]);
    for (let byte = 0x20; byte <= 0x7f; byte++) {
      if (byte === QUOTE) this.edge(normal, byte, next, true);
      else if (byte === BACKSLASH) this.edge(normal, byte, esc);
      else this.edge(normal, byte, normal);
    }
    for (let byte = 0xc2; byte <= 0xdf; byte++) this.edge(normal, byte, cont[1]);
    for (let byte = 0xe1; byte <= 0xef; byte++) if (byte !== 0xed) this.edge(normal, byte, cont[2]);
    for (let byte = 0xf1; byte <= 0xf3; byte++) this.edge(normal, byte, cont[3]);
    this.edge(normal, 0xe0, e0);
    this.edge(normal, 0xed, ed);
    this.edge(normal, 0xf0, f0);
    this.edge(normal, 0xf4, f4);
    return normal;
  }

  /** A trie of the JSON-escaped allowed values, each ended by the closing quote. */
  enumValue(values: string[], next: number): number {
    const encoded = values.map((v) => enc.encode(JSON.stringify(v).slice(1, -1)));
    const root = this.newState();
    // depth[s]: bytes from s to the nearest end of a value (its closing quote included).
    const depth = new Map<number, number>();
    const children = new Map<number, Map<number, number>>();
    for (const bytes of encoded) {
      let s = root;
      for (const byte of bytes) {
        let kids = children.get(s);
        if (!kids) children.set(s, (kids = new Map()));
        let t = kids.get(byte);
        if (t === undefined) {
          t = this.newState();
          kids.set(byte, t);
          this.edge(s, byte, t);
        }
        s = t;
      }
      this.edge(s, QUOTE, next);
    }
    const shortest = (s: number): number => {
      const known = depth.get(s);
      if (known !== undefined) return known;
      let best = this.rows[s][QUOTE] === next ? 1 : Infinity;
      let bestByte = best === 1 ? QUOTE : -1;
      for (const [byte, t] of [...(children.get(s) ?? new Map<number, number>())].sort((a, b) => a[0] - b[0])) {
        const d = 1 + shortest(t);
        if (d < best) {
          best = d;
          bestByte = byte;
        }
      }
      this.canon[s] = bestByte;
      depth.set(s, best);
      return best;
    };
    shortest(root);
    return root;
  }

  table(): Int32Array {
    const t = new Int32Array(this.rows.length * 256);
    this.rows.forEach((row, s) => t.set(row, s * 256));
    return t;
  }

  canonTable(): Int16Array {
    return Int16Array.from(this.canon);
  }
}
