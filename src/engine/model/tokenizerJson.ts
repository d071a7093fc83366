// A Hugging Face tokenizer.json of the Gemma family (BPE with byte fallback, the " " → "▁" normalizer, no
// effective pre-tokenizer) compiled into VocabTables. Anything outside that family is refused with the
// file and the reason, rather than tokenized differently from Hugging Face.

import { FileTooLargeError, NotRegularFileError, readRegularFile } from './regularFile';
import { MAX_TOKEN_ID, MAX_TOKENIZER_JSON_BYTES } from './bounds';
import { scanTokenizerJson } from './tokenizerJsonScan';
import { AddedTrie, TokenKind, bytePiece, bytePieceValue, looksSpecial, type MergeTable, type SpecialIds, type VocabTables } from './tokenizerVocab';
import { errorText, jsonForMessage } from '../../common/quote';

/** A tokenizer file that cannot be used, with the file named in the message. */
export class TokenizerError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'TokenizerError';
  }
}


/** The bytes of a tokenizer.json: a regular file of sane size, or a TokenizerError naming the file. */
export function readTokenizerFile(file: string): Buffer {
  try {
    return readRegularFile(file, MAX_TOKENIZER_JSON_BYTES);
  } catch (e) {
    if (e instanceof NotRegularFileError) throw new TokenizerError(file, `${e.kind}, not a regular file`);
    if (e instanceof FileTooLargeError) throw new TokenizerError(file, `${e.size} bytes is too large for a tokenizer.json`);
    throw new TokenizerError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** Reads and compiles a tokenizer.json file. */
export function loadTokenizerJson(file: string): VocabTables {
  const buf = readTokenizerFile(file);
  const scanned = scanTokenizerJson(buf);
  if (scanned) return compileParts(scanned.rest, scanned.vocab, scanned.mergePairs, file);
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new TokenizerError(file, `not valid JSON (${errorText(e)})`);
  }
  return compileTokenizerJson(json, file);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Compiles a parsed tokenizer.json; `file` names it in errors. */
export function compileTokenizerJson(json: unknown, file: string): VocabTables {
  const fail = (reason: string): never => {
    throw new TokenizerError(file, reason);
  };
  if (!isObj(json)) return fail('not a tokenizer.json object');
  const model = json.model;
  if (!isObj(model)) return fail('has no "model" object');
  const vocabObj = model.vocab;
  if (!isObj(vocabObj)) return fail('model.vocab is not an object');
  const vocab = new Map<string, number>();
  for (const piece in vocabObj) {
    const id = vocabObj[piece];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0x7fffffff) fail(`model.vocab[${jsonForMessage(piece)}] is not a token id`);
    vocab.set(piece, id as number);
  }
  const merges = model.merges === undefined ? [] : model.merges;
  if (!Array.isArray(merges)) return fail('model.merges is not an array');
  const pairs = new Int32Array(merges.length * 2);
  for (let rank = 0; rank < merges.length; rank++) {
    const m: unknown = merges[rank];
    let a: unknown, b: unknown;
    if (typeof m === 'string') {
      const sp = m.indexOf(' ');
      if (sp < 0 || m.indexOf(' ', sp + 1) >= 0) fail(`merge ${rank} ${jsonForMessage(m)} is not "left right"`);
      a = m.slice(0, sp);
      b = m.slice(sp + 1);
    } else if (Array.isArray(m) && m.length === 2) {
      [a, b] = m as unknown[];
    }
    const left = typeof a === 'string' ? vocab.get(a) : undefined;
    const right = typeof b === 'string' ? vocab.get(b) : undefined;
    if (left === undefined || right === undefined) return fail(`merge ${rank} ${jsonForMessage(m, 80)} names a piece that is not in the vocabulary`);
    pairs[2 * rank] = left;
    pairs[2 * rank + 1] = right;
  }
  return compileParts(json, vocab, pairs, file);
}

/**
 * Builds the tables from a tokenizer.json's other keys (model settings, normalizer, pre-tokenizer, added
 * tokens, post-processor), its vocabulary and its merges as id pairs. Also the compiler of a GGUF's BPE
 * vocabulary (tokenizerGgufBpe.ts), which describes the same tokenizer in these terms.
 */
export function compileParts(json: Obj, vocab: Map<string, number>, mergePairs: Int32Array, file: string): VocabTables {
  const fail = (reason: string): never => {
    throw new TokenizerError(file, reason);
  };
  const model = json.model;
  if (!isObj(model)) return fail('has no "model" object');
  if (model.type !== undefined && model.type !== 'BPE') fail(`model type ${jsonForMessage(model.type)} is not supported (Gemma uses BPE)`);
  for (const k of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (model[k] !== undefined && model[k] !== null && model[k] !== '') fail(`model.${k} is not supported`);
  }
  if (model.dropout !== undefined && model.dropout !== null && model.dropout !== 0) fail('BPE dropout is not supported');
  const spaceToMetaspace = normalizerReplacesSpaces(json.normalizer, fail);
  checkPreTokenizer(json.pre_tokenizer, spaceToMetaspace, fail);
  const addedList = json.added_tokens === undefined ? [] : json.added_tokens;
  if (!Array.isArray(addedList)) return fail('added_tokens is not an array');

  // Ids: the vocabulary's, plus added tokens that may lie beyond it (Gemma 3's <image_soft_token> = 262144).
  const pieceToId = vocab;
  let maxId = -1;
  for (const id of vocab.values()) if (id > maxId) maxId = id;
  const added: { id: number; content: string; special: boolean }[] = [];
  for (const a of addedList) {
    if (!isObj(a) || typeof a.content !== 'string' || typeof a.id !== 'number' || !Number.isInteger(a.id) || a.id < 0 || a.id > 0x7fffffff) {
      return fail(`added_tokens entry ${jsonForMessage(a, 80)} needs an integer "id" and a string "content"`);
    }
    for (const k of ['lstrip', 'rstrip', 'single_word'] as const) if (a[k] === true) fail(`added token ${jsonForMessage(a.content)}: ${k} is not supported`);
    // A normalized added token is matched after normalization; for text without spaces or "▁" that is the same match.
    if (a.normalized === true && spaceToMetaspace && /[ ▁]/.test(a.content)) fail(`added token ${jsonForMessage(a.content)}: normalized matching of spaces is not supported`);
    added.push({ id: a.id, content: a.content, special: a.special === true });
    if (a.id > maxId) maxId = a.id;
  }
  if (maxId < 0) fail('the vocabulary is empty');
  if (maxId >= MAX_TOKEN_ID) fail(`token id ${maxId} is past the ${MAX_TOKEN_ID} ids allowed`);

  const pieces: string[] = new Array<string>(maxId + 1).fill('');
  const kinds = new Uint8Array(maxId + 1).fill(TokenKind.UNUSED);
  const byteToId = new Int32Array(256).fill(-1);
  for (const [piece, id] of pieceToId) {
    pieces[id] = piece;
    const b = bytePieceValue(piece);
    kinds[id] = b >= 0 ? TokenKind.BYTE : TokenKind.NORMAL;
  }
  for (let b = 0; b < 256; b++) byteToId[b] = pieceToId.get(bytePiece(b)) ?? -1;
  const trie = new AddedTrie();
  for (const a of added) {
    pieces[a.id] = a.content;
    kinds[a.id] = a.special || looksSpecial(a.content) ? TokenKind.SPECIAL : TokenKind.USER;
    if (!pieceToId.has(a.content)) pieceToId.set(a.content, a.id);
    trie.add(a.content, a.id);
  }

  const unkToken = model.unk_token;
  const unk = typeof unkToken === 'string' ? (pieceToId.get(unkToken) ?? null) : null;
  return {
    pieces,
    pieceToId,
    kinds,
    byteToId,
    added: trie,
    spaceToMetaspace,
    byteFallback: model.byte_fallback === true,
    fuseUnk: model.fuse_unk === true,
    merges: buildRankTable(mergePairs, pieces, pieceToId),
    specials: findSpecials(pieceToId, unk, json.post_processor),
  };
}

function normalizerReplacesSpaces(n: unknown, fail: (r: string) => never): boolean {
  if (n === null || n === undefined) return false;
  const isReplace = (x: unknown): boolean => isObj(x) && x.type === 'Replace' && isObj(x.pattern) && x.pattern.String === ' ' && x.content === '▁';
  if (isReplace(n)) return true;
  if (isObj(n) && n.type === 'Sequence' && Array.isArray(n.normalizers)) {
    if (n.normalizers.length === 0) return false;
    if (n.normalizers.length === 1 && isReplace(n.normalizers[0])) return true;
  }
  return fail(`normalizer ${jsonForMessage(n, 120)} is not supported (Gemma replaces " " with "▁" and nothing else)`);
}

function checkPreTokenizer(p: unknown, spaceToMetaspace: boolean, fail: (r: string) => never): void {
  if (p === null || p === undefined) return;
  // Newer Gemma tokenizer.json files split on " " after the normalizer has replaced every " ": a no-op.
  if (spaceToMetaspace && isObj(p) && p.type === 'Split' && isObj(p.pattern) && p.pattern.String === ' ' && p.invert !== true) return;
  fail(`pre_tokenizer ${jsonForMessage(p, 120)} is not supported (Gemma has none)`);
}

/** BPE merges as an open-addressing hash of (left id, right id) → rank; the merged id is found on first use. */
class RankTable implements MergeTable {
  private readonly mask: number;
  private readonly lefts: Int32Array;
  private readonly rights: Int32Array;
  private readonly ranks: Int32Array;
  private readonly results: Int32Array;

  constructor(
    capacityHint: number,
    private readonly pieces: string[],
    private readonly pieceToId: Map<string, number>,
  ) {
    let cap = 16;
    while (cap < capacityHint * 2) cap *= 2;
    this.mask = cap - 1;
    this.lefts = new Int32Array(cap).fill(-1);
    this.rights = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
    this.results = new Int32Array(capacityHint).fill(-1);
  }

  private slot(left: number, right: number): number {
    return (Math.imul(left, 0x9e3779b1) ^ Math.imul(right + 0x7f4a7c15, 0x85ebca77)) & this.mask;
  }

  /** Records a merge; a repeated pair takes the later rank, as HF's merge map (collected into a HashMap) does. */
  insert(left: number, right: number, rank: number): void {
    let s = this.slot(left, right);
    while (this.lefts[s] !== -1) {
      if (this.lefts[s] === left && this.rights[s] === right) break;
      s = (s + 1) & this.mask;
    }
    this.lefts[s] = left;
    this.rights[s] = right;
    this.ranks[s] = rank;
  }

  rank(left: number, right: number): number {
    let s = this.slot(left, right);
    while (true) {
      const l = this.lefts[s];
      if (l === -1) return -1;
      if (l === left && this.rights[s] === right) return this.ranks[s];
      s = (s + 1) & this.mask;
    }
  }

  result(left: number, right: number, rank: number): number {
    let id = this.results[rank];
    if (id < 0) {
      const merged = this.pieces[left] + this.pieces[right];
      const found = this.pieceToId.get(merged);
      if (found === undefined) throw new Error(`tokenizer merge ${jsonForMessage(this.pieces[left])} + ${jsonForMessage(this.pieces[right])} makes ${jsonForMessage(merged)}, which is not in the vocabulary`);
      id = this.results[rank] = found;
    }
    return id;
  }
}

function buildRankTable(pairs: Int32Array, pieces: string[], pieceToId: Map<string, number>): MergeTable {
  const count = pairs.length >> 1;
  const table = new RankTable(Math.max(1, count), pieces, pieceToId);
  for (let rank = 0; rank < count; rank++) table.insert(pairs[2 * rank], pairs[2 * rank + 1], rank);
  return table;
}

function findSpecials(pieceToId: Map<string, number>, unk: number | null, post: unknown): SpecialIds {
  const id = (s: string): number | null => pieceToId.get(s) ?? null;
  // The post-processor's first special token is the BOS Hugging Face adds; fall back to the usual name.
  let bos = id('<bos>');
  if (isObj(post) && isObj(post.special_tokens)) {
    for (const v of Object.values(post.special_tokens)) {
      if (isObj(v) && Array.isArray(v.ids) && typeof v.ids[0] === 'number') {
        bos = v.ids[0];
        break;
      }
    }
  }
  return { bos, eos: id('<eos>'), pad: id('<pad>'), unk, startOfTurn: id('<start_of_turn>'), endOfTurn: id('<end_of_turn>') };
}
