// Token ids → text, as Hugging Face's Gemma decoder chain does it (Replace "▁" → " ", ByteFallback, Fuse):
// each token becomes its piece with spaces restored; a run of byte-fallback pieces becomes the UTF-8 text
// of its bytes, or one U+FFFD per byte when the run is not valid UTF-8. Plus a streaming variant for
// generation that emits a character only once all of its bytes have arrived.

import { TokenKind, bytePieceValue, type VocabTables } from './tokenizerVocab';

/** What one token appends to the output text, for constrained decoding. */
export type TokenPiece =
  | { kind: 'text'; text: string }
  /** One raw byte of UTF-8 (byte fallback); it becomes text together with its neighbours. */
  | { kind: 'byte'; byte: number }
  /** A control token: no text in generated output. */
  | { kind: 'special' };

/** Options of decode and the stream decoder. */
export interface DecodeOptions {
  /**
   * Leave out control tokens (<bos>, <end_of_turn>, <unusedN>, <mask>…). Default false, as Hugging Face's
   * decode. Unlike HF's skip_special_tokens this also drops <unusedN> and <mask>, which HF does not flag
   * special but llama.cpp's converter types as control, so that both model sources behave the same.
   */
  skipSpecial?: boolean;
}

/**
 * Caches the text of each token ("▁" → " "), computed on first use. A Map rather than an array of the
 * vocabulary's length: a run decodes a small part of a 262144-token vocabulary, and the array cost 2 MB.
 */
export class PieceTexts {
  private readonly texts = new Map<number, string>();

  constructor(private readonly t: VocabTables) {}

  /** The text a token stands for; for a byte piece, its `<0xXX>` spelling. */
  text(id: number): string {
    let s = this.texts.get(id);
    if (s === undefined) {
      s = this.t.pieces[id].replaceAll('▁', ' ');
      this.texts.set(id, s);
    }
    return s;
  }

  /** The token's contribution to output text. */
  piece(id: number): TokenPiece {
    const kind = this.t.kinds[id];
    if (kind === TokenKind.SPECIAL || kind === TokenKind.UNUSED || kind === undefined) return { kind: 'special' };
    if (kind === TokenKind.BYTE) return { kind: 'byte', byte: bytePieceValue(this.t.pieces[id]) };
    return { kind: 'text', text: this.text(id) };
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes ids to text; ids outside the vocabulary are skipped, as Hugging Face does. */
export function decodeIds(t: VocabTables, texts: PieceTexts, ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
  let out = '';
  let bytes: number[] = [];
  const endBytes = (): void => {
    if (bytes.length === 0) return;
    try {
      out += strictUtf8.decode(Uint8Array.from(bytes));
    } catch {
      out += '\uFFFD'.repeat(bytes.length);
    }
    bytes = [];
  };
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const kind = t.kinds[id];
    if (kind === undefined || kind === TokenKind.UNUSED) continue;
    if (kind === TokenKind.SPECIAL && opts.skipSpecial) continue;
    if (kind === TokenKind.BYTE) {
      bytes.push(bytePieceValue(t.pieces[id]));
      continue;
    }
    endBytes();
    out += texts.text(id);
  }
  endBytes();
  return out;
}

/** Turns generated ids into text piece by piece, holding back bytes of a character that is not complete yet. */
export class StreamDecoder {
  private utf8 = new TextDecoder('utf-8');
  private pendingBytes = false;

  constructor(
    private readonly t: VocabTables,
    private readonly texts: PieceTexts,
    private readonly opts: DecodeOptions = { skipSpecial: true },
  ) {}

  /** The text that token `id` completes (possibly ""). */
  push(id: number): string {
    const kind = this.t.kinds[id];
    if (kind === undefined || kind === TokenKind.UNUSED) return '';
    if (kind === TokenKind.SPECIAL && this.opts.skipSpecial) return '';
    if (kind === TokenKind.BYTE) {
      this.pendingBytes = true;
      return this.utf8.decode(Uint8Array.of(bytePieceValue(this.t.pieces[id])), { stream: true });
    }
    return this.flush() + this.texts.text(id);
  }

  /** Ends the output: bytes of an unfinished character become U+FFFD. */
  flush(): string {
    if (!this.pendingBytes) return '';
    this.pendingBytes = false;
    return this.utf8.decode();
  }
}
