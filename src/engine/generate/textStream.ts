// What generation needs from a tokenizer, and the incremental text of a growing token sequence.
// Text is built from each token's bytes through one streaming UTF-8 decoder, so a character split
// across byte-fallback tokens (<0xE2><0x82><0xAC>) appears once it is whole, never as U+FFFD halves.

/** The tokenizer surface generate/ uses; the engine's tokenizer is adapted to it in tokenizerView.ts. */
export interface GenTokenizer {
  /** Ids of plain text, no special tokens added. */
  encode(text: string): number[];
  /** The UTF-8 bytes a token stands for, or null for a control token (BOS, <start_of_turn>, <unused…>). */
  tokenBytes(id: number): Uint8Array | null;
  /** Number of ids (the vocabulary size). */
  readonly size: number;
}

/** Decodes token ids one at a time into text; control tokens render as nothing. */
export class TextStream {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private text = '';

  constructor(private readonly tok: GenTokenizer | undefined) {}

  /** Appends a token; returns the text it completed (possibly ''). */
  push(id: number): string {
    const bytes = this.tok?.tokenBytes(id);
    if (!bytes || bytes.length === 0) return '';
    const piece = this.decoder.decode(bytes, { stream: true });
    this.text += piece;
    return piece;
  }

  /** Ends the stream: bytes of an unfinished character come out as U+FFFD. */
  flush(): string {
    const piece = this.decoder.decode();
    this.text += piece;
    return piece;
  }

  /** All text so far. */
  get value(): string {
    return this.text;
  }
}

/**
 * Finds stop strings in text that grows at its end, and says how much of it is safe to show: text
 * that might be the start of a stop string is held back until the next piece decides it.
 */
export class StopMatcher {
  private readonly longest: number;

  constructor(private readonly stops: string[]) {
    this.longest = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** The earliest index where a stop string occurs in text, searching only where the last `added` chars reach. */
  find(text: string, added: number): number {
    let best = -1;
    const from = Math.max(0, text.length - added - this.longest + 1);
    for (const s of this.stops) {
      const i = text.indexOf(s, from);
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  }

  /** Length of text that can be shown: all but the longest suffix that is a proper prefix of a stop string. */
  safeLength(text: string): number {
    for (let n = Math.min(this.longest - 1, text.length); n > 0; n--) {
      const tail = text.slice(text.length - n);
      if (this.stops.some((s) => s.length > n && s.startsWith(tail))) return text.length - n;
    }
    return text.length;
  }
}
