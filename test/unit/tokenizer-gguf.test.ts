// The GGUF (SentencePiece arrays) path: on the Gemma 3 vocabulary written as llama.cpp's converter writes
// it, it must give Hugging Face's ids; on the synthetic vocabulary of test models, the GGUF form and the
// tokenizer.json form must agree; models written by the project's own writers load their tokenizers.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { createTokenizer, Tokenizer, TokenizerError } from '../../src/engine/model/tokenizer';
import { compileTokenizerJson } from '../../src/engine/model/tokenizerJson';
import { syntheticTokenizerJson, syntheticVocab } from '../../src/engine/model/syntheticVocab';
import { TokenType, type GgufTokenizerSource } from '../../src/engine/model/tokenizerSource';
import { tokenizerForModel } from '../../src/engine/model/tokenizerForModel';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { ggufSourceFromTokenizerJson } from '../../src/engine/model/tokenizerJsonToGguf';
import { GEMMA3_TOKENIZER_JSON, referenceTokenizer, seededRandom, tokenizerCorpus } from './tokenizer-helpers';
import { tempDir } from './temp-helpers';

let tok: Tokenizer;

test('builds the Gemma 3 tokenizer from GGUF arrays', () => {
  const src = ggufSourceFromTokenizerJson(GEMMA3_TOKENIZER_JSON);
  const t0 = performance.now();
  tok = createTokenizer(src);
  console.log(`GGUF-array construction (262144 tokens): ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(tok.vocabSize, 262144);
  assert.deepEqual(tok.specials, { bos: 2, eos: 1, pad: 0, unk: 3, startOfTurn: 105, endOfTurn: 106 });
});

test('gives the reference (Hugging Face) ids on the tricky corpus', () => {
  const ref = referenceTokenizer();
  for (const s of tokenizerCorpus()) {
    if (s.includes('<image_soft_token>')) continue; // id 262144 lies past the GGUF's 262144-token vocabulary
    assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), `ids of ${JSON.stringify(s).slice(0, 120)}`);
  }
});

test('whitespace runs of every length match Hugging Face (user-defined "▁" runs restored from " ")', () => {
  const ref = referenceTokenizer();
  for (let n = 1; n <= 70; n++) {
    for (const s of [' '.repeat(n), `a${' '.repeat(n)}b`, `${'\t'.repeat(n)}x`, `${'\n'.repeat(n)}y`, `x${'▁'.repeat(n)}`]) {
      assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), JSON.stringify(s));
    }
  }
});

test('random text over real pieces matches Hugging Face', () => {
  // Concatenations of random vocabulary pieces exercise merges far from the hand-written corpus.
  const ref = referenceTokenizer();
  const rnd = seededRandom(11);
  for (let i = 0; i < 200; i++) {
    let s = '';
    const n = 1 + Math.floor(rnd() * 12);
    for (let k = 0; k < n; k++) {
      const id = 256_000 * rnd();
      s += tok.decode([Math.floor(id)]);
    }
    assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), JSON.stringify(s));
  }
});

test('encodes 2 KB of text in a few ms through the GGUF path', () => {
  const text = tokenizerCorpus().filter((s) => !s.includes('<image_soft_token>')).join(' ').slice(0, 2048);
  assert.deepEqual(tok.encode(text), referenceTokenizer().encode(text, { add_special_tokens: false }));
  const t0 = performance.now();
  const n = 20;
  for (let i = 0; i < n; i++) tok.encode(text + i);
  const ms = (performance.now() - t0) / n;
  console.log(`GGUF-path encode 2 KB: ${ms.toFixed(2)} ms`);
  assert.ok(ms < 50, `encode took ${ms} ms`);
});

test('decode(encode(x)) == x through the GGUF path', () => {
  for (const s of tokenizerCorpus()) {
    if (s.includes('<image_soft_token>')) continue;
    assert.equal(tok.decode(tok.encode(s)), s.replaceAll('▁', ' '), JSON.stringify(s).slice(0, 120));
  }
});

test('the synthetic test vocabulary tokenizes the same from its GGUF arrays and its tokenizer.json', () => {
  for (const size of [262, 512, 2048]) {
    const v = syntheticVocab(size);
    const fromGguf = createTokenizer(syntheticSource(v.tokens, v.scores, v.types));
    const fromJson = new Tokenizer(compileTokenizerJson(syntheticTokenizerJson(v), 'synthetic tokenizer.json'));
    for (const s of tokenizerCorpus()) assert.deepEqual(fromGguf.encode(s), fromJson.encode(s), `${size}: ${JSON.stringify(s).slice(0, 80)}`);
    assert.equal(fromGguf.specials.startOfTurn, 105);
    assert.equal(fromGguf.specials.endOfTurn, 106);
    const ids = fromGguf.encode('<start_of_turn>user\nHi');
    assert.equal(ids.length, 8);
    assert.equal(ids[0], 105);
    assert.equal(ids[5], 4 + 0x0a); // no "\n" piece: byte fallback <0x0A>
    // Without a "▁" piece (the 262-id minimum) a space falls back to the bytes of "▁", as in Hugging Face.
    const spaced = fromGguf.pieceId('▁') === undefined ? 'héllo▁🦙\n' : 'héllo 🦙\n';
    assert.equal(fromGguf.decode(fromGguf.encode('héllo 🦙\n')), spaced);
  }
});

test('models written by the project’s writers load their tokenizers (GGUF file and HF folder)', (t) => {
  const dir = tempDir('tokm-', t);
  const gguf = path.join(dir, 'tiny.gguf');
  writeRandomGguf(gguf, GEMMA3_TINY, { seed: 1, dtype: 'f32' });
  const hf = path.join(dir, 'hf');
  writeRandomHf(hf, GEMMA3_TINY, { seed: 1, dtype: 'f32' });
  const a = tokenizerForModel(gguf);
  const b = tokenizerForModel(hf);
  assert.equal(a.vocabSize, GEMMA3_TINY.vocabSize);
  assert.equal(b.vocabSize, GEMMA3_TINY.vocabSize);
  for (const s of tokenizerCorpus().slice(0, 60)) assert.deepEqual(a.encode(s), b.encode(s), JSON.stringify(s));
  assert.throws(() => tokenizerForModel(path.join(dir, 'nope.gguf')), /no such file/);
});

test('refuses GGUF vocabularies it cannot tokenize as Hugging Face does', () => {
  const v = syntheticVocab(300);
  const base = syntheticSource(v.tokens, v.scores, v.types);
  const bad: [Partial<GgufTokenizerSource>, RegExp][] = [
    [{ model: 'bert' }, /tokenizer.ggml.model "bert" is not supported/],
    [{ model: 'gpt2' }, /a "gpt2" \(BPE\) vocabulary needs tokenizer\.ggml\.merges/], // gpt2 itself: tokenizer-gguf-bpe.test.ts
    [{ addSpacePrefix: true }, /add_space_prefix/],
    [{ types: Int32Array.from(v.types, (t, i) => (i === 7 ? 9 : t)) }, /token 7 has unknown token type 9/],
    [{ types: Int32Array.from(v.types, (t, i) => (i === 270 ? TokenType.BYTE : t)) }, /has the byte type but is not <0xXX>/],
    [{ bosId: 5000 }, /bos_token_id = 5000 is outside/],
    [{ scores: new Float32Array(3) }, /scores has 3 values/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(() => createTokenizer({ ...base, ...patch }), (e: unknown) => e instanceof TokenizerError && e.message.startsWith('synthetic.gguf: ') && re.test(e.message));
  }
});

function syntheticSource(tokens: string[], scores: Float32Array, types: Int32Array): GgufTokenizerSource {
  return {
    kind: 'gguf', path: 'synthetic.gguf', model: 'llama', pre: 'default', tokens, scores, types, merges: null,
    bosId: 2, eosId: 1, unkId: 3, padId: 0, addBosToken: true, addEosToken: false, addSpacePrefix: false, chatTemplate: null,
  };
}
