// The SentencePiece vocabulary embedded in a GGUF (tokenizer.ggml.model "llama": tokens, scores, token
// types) compiled into VocabTables so that it tokenizes exactly as Hugging Face's tokenizer.json does.
//
// SentencePiece BPE as llama.cpp runs it (llm_tokenizer_spm): two adjacent symbols may merge when their
// concatenation is a piece; the pair whose merged piece has the highest score merges first, leftmost on
// ties. Hugging Face's tokenizer.json lists exactly those pairs, ranked by the same scores, so both agree,
// except for what llama.cpp's converter changed when it wrote the GGUF (convert_hf_to_gguf):
//   - user-defined pieces ("▁▁" … the whitespace runs) were written with " " for "▁" and score -1000.
//     Hugging Face matches them as literal "▁" runs and builds them by merges ranked above every ordinary
//     piece, longest first. So here their "▁" comes back and they merge first, longer before shorter.
//   - control and user-defined tokens are matched whole in the raw text, as Hugging Face's added tokens are.

import type { GgufTokenizerSource } from './tokenizerSource';
import { TokenType } from './tokenizerSource';
import { MAX_TOKEN_ID } from './bounds';
import { firstNonFiniteF32 } from './finite';
import { TokenizerError } from './tokenizerJson';
import { quote } from '../../common/quote';
import { AddedTrie, TokenKind, bytePieceValue, type MergeTable, type VocabTables } from './tokenizerVocab';
import { compileGgufBpeVocab } from './tokenizerGgufBpe';
import { PieceIndex, type PieceLookup } from './pieceIndex';

/** Compiles a GGUF's embedded vocabulary: SentencePiece ("llama") here, BPE ("gpt2") in tokenizerGgufBpe.ts. */
export function compileGgufVocab(src: GgufTokenizerSource): VocabTables {
  const fail = (reason: string): never => {
    throw new TokenizerError(src.path, reason);
  };
  if (src.model === 'gpt2') return compileGgufBpeVocab(src);
  if (src.model !== 'llama') fail(`tokenizer.ggml.model ${quote(src.model)} is not supported (Gemma 3 GGUFs use "llama", SentencePiece, or "gpt2", BPE from a tokenizer.json)`);
  if (src.addSpacePrefix) fail('tokenizer.ggml.add_space_prefix = true is not supported (Gemma 3 has false)');
  const n = src.tokens.length;
  if (n === 0) fail('tokenizer.ggml.tokens is empty');
  if (n > MAX_TOKEN_ID) fail(`tokenizer.ggml.tokens has ${n} tokens, more than the ${MAX_TOKEN_ID} allowed`);
  if (src.scores && src.scores.length !== n) fail(`tokenizer.ggml.scores has ${src.scores.length} values for ${n} tokens`);
  if (src.types && src.types.length !== n) fail(`tokenizer.ggml.token_type has ${src.types.length} values for ${n} tokens`);
  const badScore = src.scores ? firstNonFiniteF32(src.scores) : -1;
  if (badScore >= 0) fail(`tokenizer.ggml.scores[${badScore}] is ${src.scores![badScore]}: scores must be finite`);

  const pieces = new Array<string>(n);
  const kinds = new Uint8Array(n);
  const byteToId = new Int32Array(256).fill(-1);
  const added = new AddedTrie();
  for (let id = 0; id < n; id++) {
    const type = src.types ? src.types[id] : TokenType.NORMAL;
    let piece = src.tokens[id];
    let kind: TokenKind;
    switch (type) {
      case TokenType.NORMAL:
        kind = TokenKind.NORMAL;
        break;
      case TokenType.UNKNOWN:
      case TokenType.CONTROL:
        kind = TokenKind.SPECIAL;
        break;
      case TokenType.USER_DEFINED:
        kind = TokenKind.USER;
        piece = piece.replaceAll(' ', '▁');
        break;
      case TokenType.UNUSED:
        kind = TokenKind.UNUSED;
        break;
      case TokenType.BYTE: {
        kind = TokenKind.BYTE;
        const b = bytePieceValue(piece);
        if (b < 0) fail(`token ${id} ${quote(piece)} has the byte type but is not <0xXX>`);
        if (byteToId[b] < 0) byteToId[b] = id;
        break;
      }
      default:
        return fail(`token ${id} has unknown token type ${type}`);
    }
    pieces[id] = piece;
    kinds[id] = kind;
    if (kind === TokenKind.SPECIAL || kind === TokenKind.USER) added.add(piece, id);
  }
  const pieceToId = new PieceIndex(pieces, (id) => kinds[id] !== TokenKind.UNUSED);

  const checkId = (v: number | null, key: string): number | null => {
    if (v === null) return null;
    if (!Number.isInteger(v) || v < 0 || v >= n) fail(`tokenizer.ggml.${key} = ${v} is outside the ${n}-token vocabulary`);
    return v;
  };
  const unk = checkId(src.unkId, 'unknown_token_id');
  return {
    pieces,
    pieceToId,
    kinds,
    byteToId,
    added,
    spaceToMetaspace: true,
    byteFallback: true,
    fuseUnk: false,
    merges: new ScoreTable(pieces, kinds, pieceToId, mergeRanks(src, kinds, pieces)),
    specials: {
      bos: checkId(src.bosId, 'bos_token_id'),
      eos: checkId(src.eosId, 'eos_token_id'),
      pad: checkId(src.padId, 'padding_token_id'),
      unk,
      startOfTurn: pieceToId.get('<start_of_turn>') ?? null,
      endOfTurn: pieceToId.get('<end_of_turn>') ?? null,
    },
  };
}

/**
 * Dense merge ranks per piece (lower merges first; -1: never a merge result): user-defined pieces first,
 * longest first, then ordinary pieces by score, highest first. Equal keys share a rank so that the
 * leftmost pair wins, as in llama.cpp.
 */
function mergeRanks(src: GgufTokenizerSource, kinds: Uint8Array, pieces: string[]): Int32Array {
  const n = pieces.length;
  const keys = new Float64Array(n);
  const ranked = new Uint8Array(n);
  let count = 0;
  for (let id = 0; id < n; id++) {
    if (kinds[id] === TokenKind.USER) keys[id] = -1e12 - [...pieces[id]].length;
    else if (kinds[id] === TokenKind.NORMAL) keys[id] = src.scores ? -src.scores[id] : 0;
    else continue;
    ranked[id] = 1;
    count++;
  }
  // A key's rank is its index among the distinct keys, sorted: a typed sort and a binary search per id
  // (sorting 262k ids with a comparator took ~60 ms of every load).
  const sorted = new Float64Array(count);
  for (let id = 0, i = 0; id < n; id++) if (ranked[id]) sorted[i++] = keys[id];
  sorted.sort();
  let distinct = 0;
  for (let i = 0; i < count; i++) if (i === 0 || sorted[i] !== sorted[distinct - 1]) sorted[distinct++] = sorted[i];
  const ranks = new Int32Array(n).fill(-1);
  for (let id = 0; id < n; id++) {
    if (!ranked[id]) continue;
    let lo = 0, hi = distinct - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < keys[id]) lo = mid + 1;
      else hi = mid;
    }
    ranks[id] = lo;
  }
  return ranks;
}

/**
 * SentencePiece merging: a pair merges when its concatenation is a piece, ranked by that piece. Looking a
 * pair up means building the concatenated string and hashing it, so answers are kept in a bounded
 * open-addressing cache keyed by the two ids (emptied when half full): text repeats its pairs a lot.
 */
class ScoreTable implements MergeTable {
  private static readonly CACHE_SLOTS = 1 << 17;
  private readonly cacheLeft = new Int32Array(ScoreTable.CACHE_SLOTS).fill(-1);
  private readonly cacheRight = new Int32Array(ScoreTable.CACHE_SLOTS);
  /** Merged id, or -1 when the pair never merges. */
  private readonly cacheResult = new Int32Array(ScoreTable.CACHE_SLOTS);
  private cached = 0;
  private lastLeft = -1;
  private lastRight = -1;
  private lastResult = -1;

  constructor(
    private readonly pieces: string[],
    private readonly kinds: Uint8Array,
    private readonly pieceToId: PieceLookup,
    private readonly ranks: Int32Array,
  ) {}

  rank(left: number, right: number): number {
    const id = this.merged(left, right);
    this.lastLeft = left;
    this.lastRight = right;
    this.lastResult = id;
    return id < 0 ? -1 : this.ranks[id];
  }

  result(left: number, right: number): number {
    // The encoder always asks rank() for the same pair right before result().
    if (left === this.lastLeft && right === this.lastRight) return this.lastResult;
    return this.merged(left, right);
  }

  /** The id of the piece the pair merges into, or -1. */
  private merged(left: number, right: number): number {
    const mask = ScoreTable.CACHE_SLOTS - 1;
    let s = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77)) & mask;
    while (this.cacheLeft[s] !== -1) {
      if (this.cacheLeft[s] === left && this.cacheRight[s] === right) return this.cacheResult[s];
      s = (s + 1) & mask;
    }
    const kl = this.kinds[left];
    const kr = this.kinds[right];
    let id = -1;
    if ((kl === TokenKind.NORMAL || kl === TokenKind.USER) && (kr === TokenKind.NORMAL || kr === TokenKind.USER)) {
      const found = this.pieceToId.get(this.pieces[left] + this.pieces[right]);
      if (found !== undefined && this.ranks[found] >= 0) id = found;
    }
    if (this.cached * 2 >= ScoreTable.CACHE_SLOTS) {
      this.cacheLeft.fill(-1);
      this.cached = 0;
      s = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77)) & mask;
    }
    this.cacheLeft[s] = left;
    this.cacheRight[s] = right;
    this.cacheResult[s] = id;
    this.cached++;
    return id;
  }
}
