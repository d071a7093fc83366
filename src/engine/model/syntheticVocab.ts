// The synthetic SentencePiece vocabulary of random-weight test models (gguf-gemma3.md), in one place so that
// the GGUF writer (tokenizer.ggml.* arrays) and the HF writer (tokenizer.json) describe the same ids:
//   0 <pad>, 1 <eos>, 2 <bos> (control), 3 <unk> (unknown);
//   then the 256 byte-fallback pieces <0x00>…<0xFF> (llama.cpp requires <0x0A>);
//   then "▁" and the 94 printable ASCII characters (score −id);
//   then <tN> fillers up to the vocabulary size.
// As in the real Gemma 3, <start_of_turn> = 105 and <end_of_turn> = 106 are control tokens whenever the
// vocabulary has room for them (≥ 107 ids), so chat templates work; the pieces listed above keep their
// order and simply move up by two from id 105 on. Lookups go by piece string, never by a fixed id.

import type { GgufVocab } from './ggufGemma';
import { TokenType } from './tokenizerSource';

export const START_OF_TURN_ID = 105;
export const END_OF_TURN_ID = 106;
const UNK_ID = 3;
/** Specials, the 256 bytes, the turn markers: below this the vocabulary cannot be built. */
export const MIN_SYNTHETIC_VOCAB = 4 + 256 + 2;

/** The synthetic vocabulary of `size` ids. */
export function syntheticVocab(size: number): GgufVocab {
  if (!Number.isInteger(size) || size < MIN_SYNTHETIC_VOCAB) {
    throw new Error(`a synthetic vocabulary needs at least ${MIN_SYNTHETIC_VOCAB} ids (specials, 256 bytes, turn markers), the config has ${size}`);
  }
  const pieces: [string, number][] = [
    ['<pad>', TokenType.CONTROL],
    ['<eos>', TokenType.CONTROL],
    ['<bos>', TokenType.CONTROL],
    ['<unk>', TokenType.UNKNOWN],
  ];
  for (let b = 0; b < 256; b++) pieces.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, TokenType.BYTE]);
  pieces.push(['▁', TokenType.NORMAL]);
  for (let c = 0x21; c <= 0x7e; c++) pieces.push([String.fromCharCode(c), TokenType.NORMAL]);
  pieces.splice(START_OF_TURN_ID, 0, ['<start_of_turn>', TokenType.CONTROL], ['<end_of_turn>', TokenType.CONTROL]);
  for (let n = 0; pieces.length < size; n++) pieces.push([`<t${n}>`, TokenType.NORMAL]);
  pieces.length = size;

  const tokens = pieces.map(([p]) => p);
  const types = Int32Array.from(pieces, ([, t]) => t);
  const scores = Float32Array.from(pieces, ([, t], id) => (t === TokenType.NORMAL ? -id : 0));
  return { tokens, scores, types, unkId: UNK_ID };
}

/** A Hugging Face tokenizer.json for the vocabulary, in the structure of the real Gemma 3 tokenizer.json. */
export function syntheticTokenizerJson(v: GgufVocab, bosId = 2): Record<string, unknown> {
  const added = [];
  for (let id = 0; id < v.tokens.length; id++) {
    if (v.types[id] === TokenType.CONTROL || v.types[id] === TokenType.UNKNOWN) {
      added.push({ id, content: v.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    }
  }
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, id) => (vocab[t] = id));
  const bos = v.tokens[bosId];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}
