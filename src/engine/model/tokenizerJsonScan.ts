// A fast reader for the two big sections of a tokenizer.json, model.vocab (262144 entries for Gemma 3) and
// model.merges (514906 pairs), straight from the file's bytes. JSON.parse of the 33 MB file makes ~1.3M
// strings and arrays, and turning merges into id pairs then costs 1M string lookups; here merge pieces are
// looked up by their UTF-8 bytes in a byte-keyed hash, so no string is made for them (bench/tokenizer.ts:
// about 1.4x faster than the JSON.parse path). Every other part of the file goes through JSON.parse.
// Anything unexpected makes scanTokenizerJson return null and the caller falls back to plain JSON.parse,
// which also produces the precise error messages.

/** The tokenizer.json with vocab and merges already resolved. */
export interface ScannedTokenizerJson {
  /** Every top-level key except that model.vocab and model.merges are left out. */
  rest: Record<string, unknown>;
  vocab: Map<string, number>;
  /** Two ids per merge, in rank order. */
  mergePairs: Int32Array;
}

class Unsupported extends Error {}

const Q = 0x22; // "
const BS = 0x5c; // \

/** Scans a tokenizer.json buffer, or returns null when it is not in the plain shape this reader handles. */
export function scanTokenizerJson(buf: Buffer): ScannedTokenizerJson | null {
  try {
    return new Scanner(buf).top();
  } catch (e) {
    // A piece JSON.parse refuses (a bad escape) too: the JSON.parse path reports it as a tokenizer error.
    if (e instanceof Unsupported || e instanceof SyntaxError) return null;
    throw e;
  }
}

class Scanner {
  private pos = 0;
  private vocab: Map<string, number> | null = null;
  private bytes: PieceBytes | null = null;
  private mergeList: Int32Array | null = null;
  private pendingMerges = -1;

  constructor(private readonly buf: Buffer) {}

  top(): ScannedTokenizerJson {
    const rest: Record<string, unknown> = {};
    this.objectEntries((key) => {
      if (key === 'model') rest.model = this.model();
      else rest[key] = this.parsedValue();
    });
    this.ws();
    if (this.pos !== this.buf.length) throw new Unsupported();
    if (!this.vocab) throw new Unsupported();
    if (this.pendingMerges >= 0) {
      this.pos = this.pendingMerges;
      this.mergeList = this.resolveMerges(this.pendingMerges);
    }
    return { rest, vocab: this.vocab, mergePairs: this.mergeList ?? new Int32Array(0) };
  }

  private model(): Record<string, unknown> {
    const model: Record<string, unknown> = {};
    this.objectEntries((key) => {
      if (key === 'vocab') this.scanVocab();
      else if (key === 'merges') {
        this.ws();
        const start = this.pos;
        if (this.bytes) this.mergeList = this.resolveMerges(start);
        else {
          // Merges before the vocabulary: remember where they are and resolve them at the end.
          this.skipValue();
          this.pendingMerges = start;
        }
      } else model[key] = this.parsedValue();
    });
    return model;
  }

  private scanVocab(): void {
    this.ws();
    this.expect(0x7b); // {
    const vocab = new Map<string, number>();
    const bytes = new PieceBytes(this.buf);
    this.ws();
    if (this.buf[this.pos] === 0x7d) this.pos++;
    else {
      while (true) {
        this.ws();
        const [start, end, escaped] = this.string();
        this.ws();
        this.expect(0x3a); // :
        this.ws();
        const id = this.uint();
        const piece = escaped ? (JSON.parse(this.buf.toString('utf8', start - 1, end + 1)) as string) : utf8(this.buf, start, end);
        vocab.set(piece, id);
        if (escaped) bytes.addDecoded(Buffer.from(piece, 'utf8'), id);
        else bytes.addRange(start, end, id);
        this.ws();
        const c = this.buf[this.pos++];
        if (c === 0x7d) break;
        if (c !== 0x2c) throw new Unsupported();
      }
    }
    bytes.build();
    this.vocab = vocab;
    this.bytes = bytes;
  }

  /** Reads the merges array at `from` as id pairs; leaves pos after it. */
  private resolveMerges(from: number): Int32Array {
    const bytes = this.bytes;
    if (!bytes) throw new Unsupported();
    this.pos = from;
    let pairs = new Int32Array(1 << 16);
    let n = 0;
    const push = (a: number, b: number): void => {
      if (n + 2 > pairs.length) {
        const grown = new Int32Array(pairs.length * 2);
        grown.set(pairs);
        pairs = grown;
      }
      pairs[n++] = a;
      pairs[n++] = b;
    };
    this.ws();
    this.expect(0x5b); // [
    this.ws();
    if (this.buf[this.pos] === 0x5d) this.pos++;
    else {
      while (true) {
        this.ws();
        if (this.buf[this.pos] === 0x5b) {
          this.pos++;
          this.ws();
          const a = this.lookupString(bytes);
          this.ws();
          this.expect(0x2c);
          this.ws();
          const b = this.lookupString(bytes);
          this.ws();
          this.expect(0x5d);
          push(a, b);
        } else {
          // Legacy form "left right".
          const [start, end, escaped] = this.string();
          if (escaped) throw new Unsupported();
          const sp = this.buf.indexOf(0x20, start);
          if (sp < 0 || sp >= end || this.buf.indexOf(0x20, sp + 1) < end) throw new Unsupported();
          push(bytes.find(start, sp), bytes.find(sp + 1, end));
        }
        this.ws();
        const c = this.buf[this.pos++];
        if (c === 0x5d) break;
        if (c !== 0x2c) throw new Unsupported();
      }
    }
    return pairs.subarray(0, n);
  }

  /** The id of the JSON string at pos (a vocabulary piece); Unsupported when it is not one. */
  private lookupString(bytes: PieceBytes): number {
    // One pass: find the closing quote and hash the bytes on the way (most merge pieces have no escapes).
    const buf = this.buf;
    if (buf[this.pos] !== Q) throw new Unsupported();
    const start = ++this.pos;
    let h = FNV_OFFSET;
    let c = 0;
    while (this.pos < buf.length && (c = buf[this.pos]) !== Q && c !== BS) {
      h = Math.imul(h ^ c, FNV_PRIME);
      this.pos++;
    }
    let id: number;
    if (c === Q) {
      id = bytes.findHashed(h >>> 0, start, this.pos);
      this.pos++;
    } else {
      this.pos = start - 1;
      const [s0, e0] = this.string();
      id = bytes.findDecoded(Buffer.from(JSON.parse(buf.toString('utf8', s0 - 1, e0 + 1)) as string, 'utf8'));
    }
    if (id < 0) throw new Unsupported(); // the JSON.parse path reports the missing piece
    return id;
  }

  /** Calls back for each key of an object; the callback consumes the value. */
  private objectEntries(onKey: (key: string) => void): void {
    this.ws();
    this.expect(0x7b);
    this.ws();
    if (this.buf[this.pos] === 0x7d) {
      this.pos++;
      return;
    }
    while (true) {
      this.ws();
      const [start, end, escaped] = this.string();
      const key = escaped ? (JSON.parse(this.buf.toString('utf8', start - 1, end + 1)) as string) : this.buf.toString('utf8', start, end);
      this.ws();
      this.expect(0x3a);
      onKey(key);
      this.ws();
      const c = this.buf[this.pos++];
      if (c === 0x7d) return;
      if (c !== 0x2c) throw new Unsupported();
    }
  }

  private parsedValue(): unknown {
    this.ws();
    const start = this.pos;
    this.skipValue();
    try {
      return JSON.parse(this.buf.toString('utf8', start, this.pos));
    } catch {
      throw new Unsupported();
    }
  }

  private skipValue(): void {
    this.ws();
    const c = this.buf[this.pos];
    if (c === Q) {
      this.string();
      return;
    }
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      while (this.pos < this.buf.length) {
        const d = this.buf[this.pos];
        if (d === Q) {
          this.string();
          continue;
        }
        this.pos++;
        if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) {
          if (--depth === 0) return;
        }
      }
      throw new Unsupported();
    }
    while (this.pos < this.buf.length) {
      const d = this.buf[this.pos];
      if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) return;
      this.pos++;
    }
  }

  /** A JSON string at pos: [start, end) of its raw contents and whether it has escapes. */
  private string(): [number, number, boolean] {
    if (this.buf[this.pos] !== Q) throw new Unsupported();
    const start = ++this.pos;
    let escaped = false;
    const buf = this.buf;
    while (this.pos < buf.length) {
      const c = buf[this.pos];
      if (c === Q) return [start, this.pos++, escaped];
      if (c === BS) {
        escaped = true;
        this.pos += 2;
      } else this.pos++;
    }
    throw new Unsupported();
  }

  private uint(): number {
    let v = 0;
    const start = this.pos;
    while (this.pos < this.buf.length) {
      const c = this.buf[this.pos];
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      this.pos++;
    }
    if (this.pos === start || this.pos - start > 9) throw new Unsupported();
    return v;
  }

  private ws(): void {
    const buf = this.buf;
    while (this.pos < buf.length) {
      const c = buf[this.pos];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  private expect(c: number): void {
    if (this.buf[this.pos] !== c) throw new Unsupported();
    this.pos++;
  }
}

/**
 * Vocabulary pieces keyed by their UTF-8 bytes: collected in file order, then put in an open-addressing
 * table (FNV-1a, linear probing) whose slots hold [id, start, end] side by side, so that a lookup costs
 * one cache miss in the table and one in the file.
 */
class PieceBytes {
  private entries = new Int32Array(3 << 12);
  private count = 0;
  /** Decoded bytes of pieces whose JSON had escapes; their entry's start is -(index + 1). */
  private readonly decoded: Buffer[] = [];
  private table = new Int32Array(0);
  private mask = 0;

  constructor(private readonly buf: Buffer) {}

  addRange(start: number, end: number, id: number): void {
    if (3 * (this.count + 1) > this.entries.length) {
      const grown = new Int32Array(this.entries.length * 2);
      grown.set(this.entries);
      this.entries = grown;
    }
    const e = 3 * this.count++;
    this.entries[e] = id;
    this.entries[e + 1] = start;
    this.entries[e + 2] = end;
  }

  addDecoded(bytes: Buffer, id: number): void {
    this.decoded.push(bytes);
    this.addRange(-this.decoded.length, bytes.length, id);
  }

  /** Builds the hash table; call once, after the last add. */
  build(): void {
    let cap = 16;
    while (cap < this.count * 2) cap *= 2;
    this.mask = cap - 1;
    const t = (this.table = new Int32Array(cap * 4).fill(-1));
    for (let e = 0; e < 3 * this.count; e += 3) {
      const id = this.entries[e];
      const start = this.entries[e + 1];
      const end = this.entries[e + 2];
      const src = start < 0 ? this.decoded[-start - 1] : this.buf;
      const s0 = start < 0 ? 0 : start;
      let s = hashRange(src, s0, end) & this.mask;
      while (true) {
        const b = s << 2;
        if (t[b] === -1) {
          t[b] = id;
          t[b + 1] = start;
          t[b + 2] = end;
          break;
        }
        if (this.equal(b, src, s0, end)) {
          t[b] = id; // a repeated key: the last one wins, as in JSON.parse
          break;
        }
        s = (s + 1) & this.mask;
      }
    }
    this.entries = new Int32Array(0);
  }

  find(start: number, end: number): number {
    return this.findHashed(hashRange(this.buf, start, end), start, end);
  }

  /** find() with the FNV-1a hash of buf[start, end) already computed. */
  findHashed(h: number, start: number, end: number): number {
    return this.probe(h, this.buf, start, end);
  }

  findDecoded(bytes: Buffer): number {
    return this.probe(hashRange(bytes, 0, bytes.length), bytes, 0, bytes.length);
  }

  private probe(h: number, src: Buffer, start: number, end: number): number {
    const t = this.table;
    let s = h & this.mask;
    while (true) {
      const b = s << 2;
      const id = t[b];
      if (id === -1) return -1;
      if (this.equal(b, src, start, end)) return id;
      s = (s + 1) & this.mask;
    }
  }

  /** Whether the piece in table slot offset `b` has the bytes src[start, end). */
  private equal(b: number, src: Buffer, start: number, end: number): boolean {
    const t = this.table;
    let s0 = t[b + 1];
    let len = t[b + 2];
    let bytes = this.buf;
    if (s0 < 0) {
      bytes = this.decoded[-s0 - 1];
      s0 = 0;
    } else len -= s0;
    if (len !== end - start) return false;
    for (let i = 0; i < len; i++) if (bytes[s0 + i] !== src[start + i]) return false;
    return true;
  }
}

// Buffer's own utf8Slice skips toString()'s argument handling, which costs more than the decoding for
// 262144 short keys; it has been on Buffer.prototype since Node 0.x, and toString() is the fallback.
const utf8Slice = (Buffer.prototype as unknown as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;
function utf8(buf: Buffer, start: number, end: number): string {
  return utf8Slice ? utf8Slice.call(buf, start, end) : buf.toString('utf8', start, end);
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function hashRange(b: Buffer, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], FNV_PRIME);
  return h >>> 0;
}
