// A Hugging Face tokenizer.json (Gemma's SentencePiece-style BPE) turned into the `tokenizer.ggml.*` arrays
// llama.cpp's convert_hf_to_gguf writes for it: as SentencePiece ("llama", _create_vocab_sentencepiece,
// when the folder has tokenizer.model) or as BPE ("gpt2", _set_vocab_gpt2, when it has only
// tokenizer.json). So a GGUF model can carry a real vocabulary (make-model --tokenizer [--vocab gpt2]) and
// tests can build both GGUF tokenizer paths from the same file the Hugging Face path reads.

import type { GgufVocab } from './ggufGemma';
import { readTokenizerFile, TokenizerError } from './tokenizerJson';
import { TokenType, type GgufTokenizerSource } from './tokenizerSource';
import { errorText, jsonForMessage } from '../../common/quote';

const MAX_VOCAB = 16_777_216;

/** The GGUF arrays of a tokenizer.json, with the ids of its specials (null where the file has none). */
export interface TokenizerJsonVocab extends GgufVocab {
  bosId: number | null;
  eosId: number | null;
  padId: number | null;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function readJson(file: string): unknown {
  const buf = readTokenizerFile(file);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new TokenizerError(file, `not valid JSON (${errorText(e)})`);
  }
}

/**
 * The GGUF arrays llama.cpp's convert_hf_to_gguf (_create_vocab_sentencepiece) would write for this
 * tokenizer.json: SentencePiece pieces with their scores, byte pieces typed BYTE, added tokens CONTROL when
 * special (or looking special) and otherwise USER_DEFINED with "▁" written as " ", all added tokens scored
 * -1000, ids past `vocabSize` (default: the size of model.vocab) dropped, ids below it that the file does
 * not name left empty and UNUSED. tokenizer.model's scores are not in tokenizer.json; Hugging Face ranked
 * its merges by them, so a piece's score here is minus the rank of its first merge.
 */
export function ggufVocabFromTokenizerJson(file: string, vocabSize?: number): TokenizerJsonVocab {
  const fail = (reason: string): never => {
    throw new TokenizerError(file, reason);
  };
  const j = readJson(file);
  if (!isObj(j) || !isObj(j.model) || !isObj(j.model.vocab)) return fail('has no model.vocab object (not a Hugging Face tokenizer.json)');
  if (j.model.type !== undefined && j.model.type !== 'BPE') fail(`model type ${jsonForMessage(j.model.type)} is not supported (Gemma uses BPE)`);
  const vocab = j.model.vocab;
  const idOf = new Map<string, number>();
  let maxId = -1;
  for (const piece in vocab) {
    const id = vocab[piece];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) fail(`model.vocab[${jsonForMessage(piece)}] is not a token id`);
    idOf.set(piece, id as number);
    if ((id as number) > maxId) maxId = id as number;
  }
  if (maxId < 0) fail('model.vocab is empty');
  const size = vocabSize ?? maxId + 1;
  if (!Number.isInteger(size) || size <= 0 || size > MAX_VOCAB) fail(`vocabulary size ${size} is not usable`);

  const tokens = new Array<string>(size).fill('');
  const scores = new Float32Array(size).fill(-1e9);
  const types = new Int32Array(size).fill(TokenType.UNUSED);
  for (const [piece, id] of idOf) {
    if (id >= size) continue;
    tokens[id] = piece;
    types[id] = /^<0x[0-9A-F]{2}>$/.test(piece) ? TokenType.BYTE : TokenType.NORMAL;
  }

  const merges = j.model.merges ?? [];
  if (!Array.isArray(merges)) return fail('model.merges is not an array');
  // From the last rank down, so the first (lowest-ranked) merge that makes a piece sets its score.
  for (let rank = merges.length - 1; rank >= 0; rank--) {
    const m: unknown = merges[rank];
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      return fail(`merge ${rank} ${jsonForMessage(m, 80)} is not "left right"`);
    }
    const id = idOf.get(pair[0] + pair[1]);
    if (id === undefined) return fail(`merge ${rank} ${jsonForMessage(m, 80)} makes a piece that is not in the vocabulary`);
    if (id < size) scores[id] = -rank;
  }

  const added = j.added_tokens ?? [];
  if (!Array.isArray(added)) return fail('added_tokens is not an array');
  // convert_hf_to_gguf marks these CONTROL even when tokenizer.json does not call them special.
  const looksSpecial = (t: string): boolean => t === '<mask>' || t === '<pad>' || (t.startsWith('<unused') && t.endsWith('>')) || (t.startsWith('<|') && t.endsWith('|>'));
  for (const a of added) {
    if (!isObj(a) || typeof a.content !== 'string' || typeof a.id !== 'number' || !Number.isInteger(a.id) || a.id < 0) {
      return fail(`added_tokens entry ${jsonForMessage(a, 80)} needs an integer "id" and a string "content"`);
    }
    if (a.id >= size) continue;
    if (a.special === true || looksSpecial(a.content)) {
      types[a.id] = TokenType.CONTROL;
      tokens[a.id] = a.content;
    } else {
      types[a.id] = TokenType.USER_DEFINED;
      tokens[a.id] = a.content.replaceAll('▁', ' ');
    }
    scores[a.id] = -1000;
  }

  const special = (piece: string): number | null => {
    const id = tokens.indexOf(piece);
    return id >= 0 ? id : null;
  };
  const unkPiece = typeof j.model.unk_token === 'string' ? j.model.unk_token : '<unk>';
  const unkId = special(unkPiece) ?? fail(`the unknown token ${jsonForMessage(unkPiece)} is not in the vocabulary`);
  return { tokens, scores, types, unkId, bosId: special('<bos>'), eosId: special('<eos>'), padId: special('<pad>') };
}

/**
 * The "gpt2" (BPE) arrays convert_hf_to_gguf's get_vocab_base and SpecialVocab write for this tokenizer.json:
 * ids below `vocabSize` it does not name as "[PADn]" (UNUSED), added tokens CONTROL (special or special-
 * looking) or USER_DEFINED with "▁" written " ", every other piece NORMAL, and the merges as "left right"
 * with a space inside a piece written as U+0120 (vocab.py). Scores are not part of a BPE vocabulary (zeros).
 */
export function ggufBpeVocabFromTokenizerJson(file: string, vocabSize?: number): TokenizerJsonVocab {
  const spm = ggufVocabFromTokenizerJson(file, vocabSize);
  const j = readJson(file) as { model: { merges?: unknown[] } };
  const tokens = spm.tokens.map((t, id) => (spm.types[id] === TokenType.UNUSED ? `[PAD${id}]` : t));
  const types = spm.types.map((t) => (t === TokenType.BYTE ? TokenType.NORMAL : t));
  const space = (part: string) => part.replaceAll(' ', String.fromCharCode(0x20 + 256));
  const merges = (j.model.merges ?? []).map((m) => (typeof m === 'string' ? m : (m as string[]).map(space).join(' ')));
  return { ...spm, tokens, types: Int32Array.from(types), scores: new Float32Array(tokens.length), model: 'gpt2', merges };
}

/** The tokenizer source the model loader would read from a GGUF file holding this tokenizer.json's arrays. */
export function ggufSourceFromTokenizerJson(file: string, vocabSize = 262144, model: 'llama' | 'gpt2' = 'llama'): GgufTokenizerSource {
  const v = model === 'gpt2' ? ggufBpeVocabFromTokenizerJson(file, vocabSize) : ggufVocabFromTokenizerJson(file, vocabSize);
  return {
    kind: 'gguf',
    path: `${file} (as GGUF ${model} arrays)`,
    model,
    pre: 'default',
    tokens: v.tokens,
    scores: model === 'gpt2' ? null : v.scores,
    types: v.types,
    merges: v.merges ?? null,
    bosId: v.bosId,
    eosId: v.eosId,
    unkId: v.unkId,
    padId: v.padId,
    addBosToken: true,
    addEosToken: false,
    addSpacePrefix: false,
    chatTemplate: null,
  };
}
