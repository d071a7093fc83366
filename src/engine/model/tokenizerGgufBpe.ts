// A GGUF vocabulary of tokenizer.ggml.model "gpt2" (BPE: tokens, token types, merges) compiled to tokenize
// as the Hugging Face tokenizer.json it was converted from. llama.cpp's converter writes one for a Gemma 3
// folder that has tokenizer.json but no tokenizer.model (convert_hf_to_gguf: Gemma3Model.set_vocab →
// _set_vocab_gpt2 → get_vocab_base), which many fine-tunes are saved as. What it wrote, by id:
//   - the tokenizer.json vocabulary and its added tokens; ids it lacks as "[PADn]" (UNUSED);
//   - added tokens as CONTROL (special, or special-looking) or USER_DEFINED, the latter with "▁" written " ";
//   - the merges as "left right" strings (from the [left, right] pairs of newer tokenizer.json files).
// Gemma's tokenizer.json is BPE over "▁"-spaced text (normalizer " " → "▁", byte fallback), so the same
// description rebuilt as a tokenizer.json (tokenizerJson.ts compileParts) gives Hugging Face's ids. A byte-
// level BPE vocabulary (GPT-2 style, spaces as "Ġ") is another tokenizer and is refused.

import { compileParts, TokenizerError } from './tokenizerJson';
import { TokenType, type GgufTokenizerSource } from './tokenizerSource';
import type { VocabTables } from './tokenizerVocab';

/** Compiles a GGUF's embedded "gpt2" (BPE) vocabulary of the Gemma family. */
export function compileGgufBpeVocab(src: GgufTokenizerSource): VocabTables {
  const fail = (reason: string): never => {
    throw new TokenizerError(src.path, reason);
  };
  const n = src.tokens.length;
  if (n === 0) fail('tokenizer.ggml.tokens is empty');
  if (src.types && src.types.length !== n) fail(`tokenizer.ggml.token_type has ${src.types.length} values for ${n} tokens`);
  if (!src.merges) fail('a "gpt2" (BPE) vocabulary needs tokenizer.ggml.merges, and this file has none');

  const vocab = new Map<string, number>();
  const added: { id: number; content: string; special: boolean; normalized: boolean }[] = [];
  let metaspace = 0;
  let byteLevel = 0;
  for (let id = 0; id < n; id++) {
    const type = src.types ? src.types[id] : TokenType.NORMAL;
    let piece = src.tokens[id];
    if (type === TokenType.UNUSED) continue;
    if (type === TokenType.USER_DEFINED) piece = piece.replaceAll(' ', '▁');
    if (type === TokenType.CONTROL || type === TokenType.USER_DEFINED || type === TokenType.UNKNOWN) {
      added.push({ id, content: piece, special: type !== TokenType.USER_DEFINED, normalized: false });
    } else if (type !== TokenType.NORMAL && type !== TokenType.BYTE) {
      fail(`token ${id} has unknown token type ${type}`);
    }
    if (piece.startsWith('▁')) metaspace++;
    if (piece.startsWith('Ġ')) byteLevel++;
    if (!vocab.has(piece)) vocab.set(piece, id);
  }
  if (metaspace === 0 || byteLevel > metaspace) {
    fail('the "gpt2" vocabulary is byte-level BPE (GPT-2 style, "Ġ" for spaces), not Gemma\'s "▁"-spaced BPE; it is not a Gemma 3 tokenizer');
  }

  const merges = src.merges!;
  const pairs = new Int32Array(merges.length * 2);
  for (let rank = 0; rank < merges.length; rank++) {
    const [left, right] = splitMerge(merges[rank], vocab) ?? fail(`merge ${rank} ${JSON.stringify(merges[rank]).slice(0, 80)} is not two pieces of the vocabulary`);
    pairs[2 * rank] = left;
    pairs[2 * rank + 1] = right;
  }
  const unk = src.unkId !== null && src.unkId < n ? src.tokens[src.unkId] : undefined;
  const json = {
    model: { type: 'BPE', unk_token: unk, fuse_unk: true, byte_fallback: [...vocab.keys()].some((p) => /^<0x[0-9A-F]{2}>$/.test(p)) },
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: null,
    added_tokens: added,
  };
  const tables = compileParts(json, vocab, pairs, src.path);
  // The file's own special ids name them, where tokenizer.json would have a post-processor.
  const checked = (v: number | null, key: string): number | null => {
    if (v === null) return null;
    if (!Number.isInteger(v) || v < 0 || v >= n) fail(`tokenizer.ggml.${key} = ${v} is outside the ${n}-token vocabulary`);
    return v;
  };
  tables.specials.bos = checked(src.bosId, 'bos_token_id') ?? tables.specials.bos;
  tables.specials.eos = checked(src.eosId, 'eos_token_id') ?? tables.specials.eos;
  tables.specials.pad = checked(src.padId, 'padding_token_id') ?? tables.specials.pad;
  tables.specials.unk = checked(src.unkId, 'unknown_token_id') ?? tables.specials.unk;
  return tables;
}

/**
 * The two ids of a "left right" merge. Pieces hold no spaces (a space inside one was written as "Ġ",
 * U+0120, by the converter), but a piece may be "Ġ"-spelled itself, so every split point is tried.
 */
function splitMerge(m: string, vocab: Map<string, number>): [number, number] | null {
  for (let at = m.indexOf(' '); at >= 0; at = m.indexOf(' ', at + 1)) {
    const left = vocab.get(m.slice(0, at)) ?? vocab.get(m.slice(0, at).replaceAll('Ġ', ' '));
    const right = vocab.get(m.slice(at + 1)) ?? vocab.get(m.slice(at + 1).replaceAll('Ġ', ' '));
    if (left !== undefined && right !== undefined) return [left, right];
  }
  return null;
}
