// The compiled vocabulary both tokenizer sources turn into (tokenizerJson.ts from a Hugging Face
// tokenizer.json, tokenizerGguf.ts from a GGUF's SentencePiece arrays), so that one encoder and one decoder
// serve both. Pieces keep the model's spelling: "▁" for a space, "<0x0A>" for a byte-fallback piece.

import type { PieceLookup } from './pieceIndex';

/** What a token is, for matching, merging and decoding. */
export const TokenKind = {
  /** An ordinary piece: takes part in merges, decodes to its text. */
  NORMAL: 0,
  /** A byte-fallback piece `<0xXX>`: one raw byte of UTF-8. */
  BYTE: 1,
  /** A control token (`<bos>`, `<end_of_turn>`, `<unusedN>`…): matched whole in text, emits no text in generation. */
  SPECIAL: 2,
  /** A user-defined added token (`\n`, `▁▁`, `<div>`…): matched whole in text, decodes to its text. */
  USER: 3,
  /** A filler id with no piece (GGUF "unused" type): never produced by encode. */
  UNUSED: 4,
} as const;
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind];

/**
 * Merge priorities: rank(left, right) is the priority of merging the two adjacent pieces (lower merges
 * first), or -1 when the pair never merges; result() gives the merged piece's id.
 */
export interface MergeTable {
  rank(left: number, right: number): number;
  result(left: number, right: number, rank: number): number;
}

/** The special ids a runtime needs; null where the vocabulary has no such token. */
export interface SpecialIds {
  bos: number | null;
  eos: number | null;
  pad: number | null;
  unk: number | null;
  startOfTurn: number | null;
  endOfTurn: number | null;
}

/** Everything the encoder and decoder read, built once per model. */
export interface VocabTables {
  /** id → piece as the model spells it. */
  pieces: string[];
  /** piece → id (for normal, byte and added pieces). */
  pieceToId: PieceLookup;
  /** id → TokenKind. */
  kinds: Uint8Array;
  /** byte value → id of its `<0xXX>` piece, or -1. */
  byteToId: Int32Array;
  /** Added tokens matched as whole units in raw text before any merging (leftmost-longest). */
  added: AddedTrie;
  /** Whether the normalizer turns " " into "▁" (Gemma does). */
  spaceToMetaspace: boolean;
  /** Whether an unknown character falls back to its UTF-8 bytes. */
  byteFallback: boolean;
  /** Whether consecutive unknown characters become one unk token. */
  fuseUnk: boolean;
  merges: MergeTable;
  specials: SpecialIds;
}

interface TrieNode {
  id: number;
  next: Map<number, TrieNode> | null;
}

/** A trie over UTF-16 code units of the added tokens' texts, for leftmost-longest matching. */
export class AddedTrie {
  private readonly root: TrieNode = { id: -1, next: null };
  private count = 0;

  /** Adds a token text; an empty text is ignored (it could never match). */
  add(text: string, id: number): void {
    if (text.length === 0) return;
    let node = this.root;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      node.next ??= new Map();
      let child = node.next.get(c);
      if (!child) {
        child = { id: -1, next: null };
        node.next.set(c, child);
      }
      node = child;
    }
    node.id = id;
    this.count++;
  }

  /** Number of texts added. */
  get size(): number {
    return this.count;
  }

  /**
   * The longest added token starting at `pos`, as [id, end], or null. Leftmost-longest over the whole
   * text (what HF's added-vocabulary Aho-Corasick does) is this, tried at each position from the left.
   */
  matchAt(text: string, pos: number): [number, number] | null {
    let node = this.root;
    let best: [number, number] | null = null;
    for (let i = pos; i < text.length; i++) {
      const child = node.next?.get(text.charCodeAt(i));
      if (!child) break;
      node = child;
      if (node.id >= 0) best = [node.id, i + 1];
    }
    return best;
  }

  /** Whether any added token starts with this code unit (the fast path: most characters start none). */
  startsWith(code: number): boolean {
    return this.root.next?.has(code) ?? false;
  }
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** The byte a `<0xXX>` piece stands for, or -1 for any other piece. */
export function bytePieceValue(piece: string): number {
  const m = piece.length === 6 ? BYTE_PIECE.exec(piece) : null;
  return m ? parseInt(m[1], 16) : -1;
}

/** The `<0xXX>` spelling of a byte, as SentencePiece and HF's byte fallback write it. */
export function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/**
 * Added tokens that llama.cpp's converter marks as control although Hugging Face does not flag them
 * special (convert_hf_to_gguf's does_token_look_special): treating them the same way from both sources
 * keeps the two paths' tokenToPiece identical.
 */
export function looksSpecial(text: string): boolean {
  return (
    text === '<pad>' ||
    text === '<mask>' ||
    text === '<2mass>' ||
    text === '[@BOS@]' ||
    (text.startsWith('<|') && text.endsWith('|>')) ||
    (text.startsWith('<｜') && text.endsWith('｜>')) ||
    (text.startsWith('<unused') && text.endsWith('>'))
  );
}
