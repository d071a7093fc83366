// A fast reader for the two big sections of a tokenizer.json, model.vocab (262144 entries for Gemma 3) and
// model.merges (514906 pairs), straight from the file's bytes. JSON.parse of the 33 MB file and the
// 1M string lookups that turn merges into id pairs took most of a second; here merge pieces are looked up
// by their UTF-8 bytes in a byte-keyed hash, so no string is made for them. Every other part of the file
// goes through JSON.parse. Anything unexpected makes scanTokenizerJson return null and the caller falls back to
// plain JSON.parse, which also produces the precise error messages.

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
    if (e instanceof Unsupported) return null;
    throw e;
  }
}

class Scanner {
  private pos = 0;
  private vocab: Map<string, number> | null = null;
  private bytes: PieceBytes | null = null;
  private mergeList: Int32Array | null = null;
  private pendingMerges: [number, number] | null = null;

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
    if (this.pendingMerges) this.mergeList = this.resolveMerges(this.pendingMerges[0], this.pendingMerges[1]);
    return { rest, vocab: this.vocab, mergePairs: this.mergeList ?? new Int32Array(0) };
  }

  private model(): Record<string, unknown> {
    const model: Record<string, unknown> = {};
    this.objectEntries((key) => {
      if (key === 'vocab') this.scanVocab();
      else if (key === 'merges') {
        // Merges may come before the vocabulary; remember where they are and resolve them at the end.
        const start = this.pos;
        this.skipValue();
        this.pendingMerges = [start, this.pos];
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
        const piece = escaped ? (JSON.parse(this.buf.toString('utf8', start - 1, end + 1)) as string) : this.buf.toString('utf8', start, end);
        vocab.set(piece, id);
        if (escaped) bytes.addDecoded(Buffer.from(piece, 'utf8'), id);
        else bytes.addRange(start, end, id);
        this.ws();
        const c = this.buf[this.pos++];
        if (c === 0x7d) break;
        if (c !== 0x2c) throw new Unsupported();
      }
    }
    this.vocab = vocab;
    this.bytes = bytes;
  }

  private resolveMerges(from: number, to: number): Int32Array {
    const bytes = this.bytes;
    if (!bytes) throw new Unsupported();
    const saved = this.pos;
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
    if (this.pos !== to) throw new Unsupported();
    this.pos = saved;
    return pairs.subarray(0, n);
  }

  /** The id of the JSON string at pos (a vocabulary piece); Unsupported when it is not one. */
  private lookupString(bytes: PieceBytes): number {
    const [start, end, escaped] = this.string();
    const id = escaped ? bytes.findDecoded(Buffer.from(JSON.parse(this.buf.toString('utf8', start - 1, end + 1)) as string, 'utf8')) : bytes.find(start, end);
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

/** Vocabulary pieces keyed by their UTF-8 bytes (open addressing, FNV-1a). */
class PieceBytes {
  private ids = new Int32Array(1 << 10).fill(-1);
  private starts = new Int32Array(1 << 10);
  private ends = new Int32Array(1 << 10);
  private count = 0;
  /** Pieces whose JSON had escapes: their decoded bytes, by slot. */
  private readonly decoded = new Map<number, Buffer>();

  constructor(private readonly buf: Buffer) {}

  addRange(start: number, end: number, id: number): void {
    this.insert(hashRange(this.buf, start, end), id, start, end, null);
  }

  addDecoded(bytes: Buffer, id: number): void {
    this.insert(hashRange(bytes, 0, bytes.length), id, 0, bytes.length, bytes);
  }

  find(start: number, end: number): number {
    return this.probe(this.buf, start, end);
  }

  findDecoded(bytes: Buffer): number {
    return this.probe(bytes, 0, bytes.length);
  }

  private insert(h: number, id: number, start: number, end: number, own: Buffer | null): void {
    if ((this.count + 1) * 2 > this.ids.length) this.grow();
    const mask = this.ids.length - 1;
    let s = h & mask;
    const src = own ?? this.buf;
    while (this.ids[s] !== -1) {
      if (this.equal(s, src, start, end)) {
        this.ids[s] = id; // a repeated key: the last one wins, as in JSON.parse
        return;
      }
      s = (s + 1) & mask;
    }
    this.ids[s] = id;
    this.starts[s] = start;
    this.ends[s] = end;
    if (own) this.decoded.set(s, own);
    this.count++;
  }

  private probe(src: Buffer, start: number, end: number): number {
    const mask = this.ids.length - 1;
    let s = hashRange(src, start, end) & mask;
    while (this.ids[s] !== -1) {
      if (this.equal(s, src, start, end)) return this.ids[s];
      s = (s + 1) & mask;
    }
    return -1;
  }

  private equal(slot: number, src: Buffer, start: number, end: number): boolean {
    const own = this.decoded.get(slot);
    const b = own ?? this.buf;
    const s0 = this.starts[slot];
    const len = this.ends[slot] - s0;
    if (len !== end - start) return false;
    for (let i = 0; i < len; i++) if (b[s0 + i] !== src[start + i]) return false;
    return true;
  }

  private grow(): void {
    const old = { ids: this.ids, starts: this.starts, ends: this.ends, decoded: new Map(this.decoded) };
    const cap = this.ids.length * 2;
    this.ids = new Int32Array(cap).fill(-1);
    this.starts = new Int32Array(cap);
    this.ends = new Int32Array(cap);
    this.decoded.clear();
    this.count = 0;
    for (let s = 0; s < old.ids.length; s++) {
      if (old.ids[s] === -1) continue;
      const own = old.decoded.get(s) ?? null;
      const src = own ?? this.buf;
      this.insert(hashRange(src, old.starts[s], old.ends[s]), old.ids[s], old.starts[s], old.ends[s], own);
    }
  }
}

function hashRange(b: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}
