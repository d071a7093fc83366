// The Gemma 3 tokenizer, from a Hugging Face tokenizer.json or from the SentencePiece vocabulary inside a
// GGUF, giving the ids Hugging Face gives. One compiled vocabulary (tokenizerVocab.ts) serves both sources;
// encoding is tokenizerEncode.ts, decoding tokenizerDecode.ts.
//
//   const tok = createTokenizer(source);
//   tok.encode('Hello world')          // [9259, 1902]: no BOS, no special tokens added
//   tok.decode([9259, 1902])            // 'Hello world'
//   tok.specials.endOfTurn              // 106

import { compileGgufVocab } from './tokenizerGguf';
import { loadTokenizerJson } from './tokenizerJson';
import { encodeText, type Encoded } from './tokenizerEncode';
import { PieceTexts, StreamDecoder, decodeIds, type DecodeOptions, type TokenPiece } from './tokenizerDecode';
import type { TokenizerSource } from './tokenizerSource';
import type { SpecialIds, VocabTables } from './tokenizerVocab';

export type { Encoded } from './tokenizerEncode';
export type { DecodeOptions, TokenPiece } from './tokenizerDecode';
export { StreamDecoder } from './tokenizerDecode';
export type { SpecialIds } from './tokenizerVocab';
export { TokenizerError } from './tokenizerJson';

export class Tokenizer {
  /** Number of ids (the largest id + 1); may exceed the model's embedding rows (Gemma 3: 262145 vs 262144). */
  readonly vocabSize: number;
  readonly specials: SpecialIds;
  private readonly texts: PieceTexts;

  constructor(private readonly tables: VocabTables) {
    this.vocabSize = tables.pieces.length;
    this.specials = tables.specials;
    this.texts = new PieceTexts(tables);
  }

  /** The ids of `text`, no special tokens added; special-token strings in the text become their ids. */
  encode(text: string): number[] {
    return encodeText(this.tables, text).ids;
  }

  /** encode() plus the UTF-16 offset in `text` where each token starts. */
  encodeWithOffsets(text: string): Encoded {
    return encodeText(this.tables, text);
  }

  /** The text of `ids`, byte-fallback runs reassembled into UTF-8 and "▁" turned into spaces. */
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    return decodeIds(this.tables, this.texts, ids, opts);
  }

  /** A decoder for generated tokens that emits text only once its UTF-8 is complete (control tokens skipped by default). */
  streamDecoder(opts?: DecodeOptions): StreamDecoder {
    return new StreamDecoder(this.tables, this.texts, opts);
  }

  /** What token `id` appends to the output: its text, one raw byte, or nothing (special). */
  tokenToPiece(id: number): TokenPiece {
    return this.texts.piece(id);
  }

  /** The id of a piece spelled as the model stores it ("▁the", "<end_of_turn>"), or undefined. */
  pieceId(piece: string): number | undefined {
    return this.tables.pieceToId.get(piece);
  }

  /** The piece of an id as the model stores it, or undefined outside the vocabulary. */
  idToPiece(id: number): string | undefined {
    return this.tables.pieces[id];
  }
}

/** Builds the tokenizer a model loader found (tokenizer.json file or GGUF arrays). */
export function createTokenizer(source: TokenizerSource): Tokenizer {
  return new Tokenizer(source.kind === 'gguf' ? compileGgufVocab(source) : loadTokenizerJson(source.path));
}
