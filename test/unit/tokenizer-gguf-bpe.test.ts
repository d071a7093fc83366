// The GGUF "gpt2" (BPE) vocabulary path: Gemma 3's tokenizer.json written as llama.cpp's converter writes it
// for a folder without tokenizer.model (tokens, token types, merges; no scores) must give Hugging Face's ids
// on the tokenizer tests' strings, and a model file carrying such a vocabulary loads its tokenizer.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { createTokenizer, Tokenizer, TokenizerError } from '../../src/engine/model/tokenizer';
import { TokenType, type GgufTokenizerSource } from '../../src/engine/model/tokenizerSource';
import { tokenizerForModel } from '../../src/engine/model/tokenizerForModel';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { ggufBpeVocabFromTokenizerJson, ggufSourceFromTokenizerJson } from '../../src/engine/model/tokenizerJsonToGguf';
import { GEMMA3_TOKENIZER_JSON, referenceTokenizer, seededRandom, tokenizerCorpus } from './tokenizer-helpers';
import { tempDir } from './temp-helpers';

let tok: Tokenizer;

test('builds the Gemma 3 tokenizer from GGUF "gpt2" arrays (tokens, types, merges)', () => {
  const src = ggufSourceFromTokenizerJson(GEMMA3_TOKENIZER_JSON, 262144, 'gpt2');
  assert.equal(src.scores, null);
  assert.ok(src.merges && src.merges.length > 500_000);
  assert.ok(src.tokens.every((t, id) => src.types![id] !== TokenType.BYTE), 'the converter types byte pieces NORMAL in a BPE vocabulary');
  const t0 = performance.now();
  tok = createTokenizer(src);
  console.log(`GGUF gpt2-array construction (262144 tokens, ${src.merges!.length} merges): ${(performance.now() - t0).toFixed(0)} ms`);
  assert.deepEqual(tok.specials, { bos: 2, eos: 1, pad: 0, unk: 3, startOfTurn: 105, endOfTurn: 106 });
});

test('gives the reference (Hugging Face) ids on the tokenizer corpus, whitespace runs and random pieces', () => {
  const ref = referenceTokenizer();
  for (const s of tokenizerCorpus()) {
    if (s.includes('<image_soft_token>')) continue; // id 262144 lies past the GGUF's 262144-token vocabulary
    assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), `ids of ${JSON.stringify(s).slice(0, 120)}`);
  }
  for (let n = 1; n <= 40; n++) {
    for (const s of [' '.repeat(n), `a${' '.repeat(n)}b`, `${'\t'.repeat(n)}x`, `${'\n'.repeat(n)}y`]) {
      assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), JSON.stringify(s));
    }
  }
  const rnd = seededRandom(7);
  for (let i = 0; i < 100; i++) {
    let s = '';
    for (let k = 0, n = 1 + Math.floor(rnd() * 12); k < n; k++) s += tok.decode([Math.floor(256_000 * rnd())]);
    assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), JSON.stringify(s));
  }
});

test('decode(encode(x)) == x through the gpt2 path', () => {
  for (const s of tokenizerCorpus()) {
    if (s.includes('<image_soft_token>')) continue;
    assert.equal(tok.decode(tok.encode(s)), s.replaceAll('▁', ' '), JSON.stringify(s).slice(0, 120));
  }
});

test('a model GGUF carrying a gpt2 vocabulary loads its tokenizer', () => {
  const dir = tempDir('gguf-bpe-');
  const file = path.join(dir, 'bpe.gguf');
  const cfg = { ...GEMMA3_TINY, vocabSize: 262144 };
  // A tiny model body with the real vocabulary: the embedding has 262144 rows of 64.
  writeRandomGguf(file, cfg, { seed: 1, dtype: 'q4_0', vocab: ggufBpeVocabFromTokenizerJson(GEMMA3_TOKENIZER_JSON, 262144) });
  const fromFile = tokenizerForModel(file);
  const ref = referenceTokenizer();
  for (const s of ['Hello world', 'def f(x):\n    return x', '  two  spaces']) {
    assert.deepEqual(fromFile.encode(s), ref.encode(s, { add_special_tokens: false }), s);
  }
});

test('a byte-level (GPT-2 style) or merge-less BPE vocabulary is refused by name', () => {
  const base: GgufTokenizerSource = {
    kind: 'gguf', path: 'x.gguf', model: 'gpt2', pre: 'gpt-2', tokens: ['<unk>', 'Ġthe', 'Ġa', 'h', 'e', 'he'], scores: null,
    types: Int32Array.from([2, 1, 1, 1, 1, 1]), merges: ['h e'], bosId: null, eosId: null, unkId: 0, padId: null,
    addBosToken: false, addEosToken: false, addSpacePrefix: false, chatTemplate: null,
  };
  assert.throws(() => createTokenizer(base), (e: Error) => e instanceof TokenizerError && /byte-level BPE/.test(e.message));
  assert.throws(() => createTokenizer({ ...base, tokens: ['<unk>', '▁the', 'h'], types: Int32Array.from([2, 1, 1]), merges: null }), /needs tokenizer\.ggml\.merges/);
  assert.throws(() => createTokenizer({ ...base, model: 'bert' }), /tokenizer\.ggml\.model "bert" is not supported/);
});
