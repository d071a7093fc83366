// Adapts the engine's Tokenizer to the small surface generate/ needs (textStream.ts's GenTokenizer):
// each token's bytes, with "▁" already turned into a space and byte-fallback pieces as one raw byte.

import type { Tokenizer } from '../model/tokenizer';
import type { GenTokenizer } from './textStream';

const utf8 = new TextEncoder();

/**
 * The generation view of a tokenizer for a model of `modelVocab` ids: ids past the model's embedding
 * (Gemma 3's tokenizer has one more id than the 270M's 262144 rows) are left out.
 */
export function genTokenizer(tok: Tokenizer, modelVocab: number): GenTokenizer {
  return {
    size: Math.min(tok.vocabSize, modelVocab),
    encode: (text) => tok.encode(text),
    tokenBytes(id) {
      const p = tok.tokenToPiece(id);
      return p.kind === 'text' ? utf8.encode(p.text) : p.kind === 'byte' ? Uint8Array.of(p.byte) : null;
    },
  };
}
