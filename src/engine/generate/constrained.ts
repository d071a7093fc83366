// Constrained generation for extraction: logits are masked, token by token, so the output is always
// a JSON object of the given shape (see jsonShape.ts), and it always closes within the token budget.
//
// Masking 262k tokens per step must be cheap: the vocabulary's bytes are packed once per tokenizer,
// and each automaton state computes its allowed tokens (and the state each leads to) the first time
// it is reached. Inside a string value that set is most of the vocabulary, so a step costs O(V).
// Control tokens (no bytes) are never allowed; the object ends when the automaton reaches DONE, with
// no stop token needed.

import type { GemmaRuntime, KvCache } from '../gemma/runtime';
import { generate, type FinishReason, type GenerateOptions } from './generator';
import { JsonAutomaton, type JsonShape, REJECT } from './jsonShape';
import type { GenTokenizer } from './textStream';
import type { SamplingOptions } from './sampling';

/** Every token's bytes in one buffer: token i is bytes[offsets[i], offsets[i+1]); control tokens are empty. */
export interface PackedVocab {
  bytes: Uint8Array;
  offsets: Int32Array;
  size: number;
}

const packedCache = new WeakMap<GenTokenizer, PackedVocab>();

/** The tokenizer's vocabulary as packed bytes (computed once per tokenizer). */
export function packVocab(tok: GenTokenizer): PackedVocab {
  const hit = packedCache.get(tok);
  if (hit) return hit;
  const parts: Uint8Array[] = [];
  const offsets = new Int32Array(tok.size + 1);
  let total = 0;
  for (let id = 0; id < tok.size; id++) {
    const b = tok.tokenBytes(id) ?? new Uint8Array(0);
    parts.push(b);
    total += b.length;
    offsets[id + 1] = total;
  }
  const bytes = new Uint8Array(total);
  parts.forEach((p, id) => bytes.set(p, offsets[id]));
  const packed = { bytes, offsets, size: tok.size };
  packedCache.set(tok, packed);
  return packed;
}

/** The tokens allowed in one state and the state each leads to. */
interface Moves {
  ids: Int32Array;
  next: Int32Array;
}

/** One shape compiled against one vocabulary; reusable across requests (it holds no per-request state). */
export class JsonConstraintTable {
  readonly automaton: JsonAutomaton;
  private readonly moves = new Map<number, Moves>();

  constructor(shape: JsonShape, readonly vocab: PackedVocab) {
    this.automaton = new JsonAutomaton(shape);
  }

  /** Allowed tokens from a state (lazily computed and kept). */
  movesFrom(state: number): Moves {
    const hit = this.moves.get(state);
    if (hit) return hit;
    const { bytes, offsets, size } = this.vocab;
    const a = this.automaton;
    const ids: number[] = [];
    const next: number[] = [];
    for (let id = 0; id < size; id++) {
      const from = offsets[id];
      const to = offsets[id + 1];
      if (from === to) continue;
      const t = a.run(state, bytes, from, to);
      if (t !== REJECT) {
        ids.push(id);
        next.push(t);
      }
    }
    const m = { ids: Int32Array.from(ids), next: Int32Array.from(next) };
    this.moves.set(state, m);
    return m;
  }

  /** Upper bound on the tokens needed to finish from a state: its closing bytes, one token each. */
  closeCost(state: number): number {
    return this.automaton.closeLen[state];
  }
}

/** The per-request cursor over a constraint table; plugs into generate() as its TokenConstraint. */
export class JsonConstraint {
  private state: number;

  constructor(readonly table: JsonConstraintTable) {
    this.state = table.automaton.start;
  }

  /** Tokens the shape needs at least (an upper bound when every byte has a token of its own). */
  minTokens(): number {
    return this.table.closeCost(this.state);
  }

  get done(): boolean {
    return this.state === this.table.automaton.done;
  }

  /** The tokens allowed next that still leave room to close the object within `remaining` tokens (this one included). */
  allowed(remaining: number): Int32Array {
    const { ids, next } = this.table.movesFrom(this.state);
    const out = new Int32Array(ids.length);
    let n = 0;
    for (let i = 0; i < ids.length; i++) if (this.table.closeCost(next[i]) <= remaining - 1) out[n++] = ids[i];
    if (n === 0) throw new Error(`no token of the vocabulary can continue the JSON within ${remaining} tokens`);
    return out.subarray(0, n);
  }

  /** Moves past a chosen token; true once the object is complete. */
  advance(id: number): boolean {
    const { bytes, offsets } = this.table.vocab;
    const t = this.table.automaton.run(this.state, bytes, offsets[id], offsets[id + 1]);
    if (t === REJECT || offsets[id] === offsets[id + 1]) throw new Error(`internal: token ${id} breaks the JSON shape`);
    this.state = t;
    return this.done;
  }
}

export interface ExtractOptions {
  promptIds: number[];
  shape: JsonShape;
  /** Budget for the whole object; must cover at least the shape's closing (error otherwise). */
  maxTokens: number;
  sampling: SamplingOptions;
  adapter?: string;
  signal?: AbortSignal;
  onToken?: GenerateOptions['onToken'];
  /** A compiled table to reuse across requests with the same shape and tokenizer. */
  table?: JsonConstraintTable;
  /** A cache holding the prompt's first start.length ids (see GenerateOptions.start). */
  start?: KvCache;
}

export interface ExtractResult {
  tokens: number[];
  text: string;
  /** The parsed object, fields in shape order; null only when cancelled. */
  value: Record<string, string> | null;
  finishReason: Exclude<FinishReason, 'length'>;
}

/** Generates a JSON object of the given shape; the result always parses unless cancelled. */
export async function extract(runtime: GemmaRuntime, tok: GenTokenizer, o: ExtractOptions): Promise<ExtractResult> {
  if (tok.size > runtime.config.vocabSize) throw new Error(`the tokenizer has ${tok.size} tokens but the model only ${runtime.config.vocabSize}`);
  const table = o.table ?? new JsonConstraintTable(o.shape, packVocab(tok));
  const c = new JsonConstraint(table);
  if (c.minTokens() > o.maxTokens) throw new Error(`max tokens ${o.maxTokens} is too small for this JSON shape: it needs up to ${c.minTokens()}`);
  const r = await generate(runtime, tok, {
    promptIds: o.promptIds,
    maxTokens: o.maxTokens,
    sampling: o.sampling,
    stopIds: [],
    adapter: o.adapter,
    signal: o.signal,
    onToken: o.onToken,
    start: o.start,
    constraint: {
      // Ids past the tokenizer (padding rows of the embedding) are never allowed: movesFrom lists only its ids.
      allowed: (remaining) => c.allowed(remaining),
      advance: (id) => c.advance(id),
    },
  });
  if (r.finishReason === 'cancelled') return { tokens: r.tokens, text: r.text, value: null, finishReason: 'cancelled' };
  if (!c.done) throw new Error('internal: the JSON object did not close within the budget');
  const parsed = JSON.parse(r.text) as Record<string, string>;
  return { tokens: r.tokens, text: r.text, value: parsed, finishReason: 'stop' };
}
