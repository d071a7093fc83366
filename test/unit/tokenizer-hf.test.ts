// The tokenizer.json path against the reference (lenml's port of transformers' tokenizer) on the real
// Gemma 3 tokenizer.json: ids, round trips, special ids, speed, and refusal of files it cannot honour.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTokenizer, TokenizerError, type Tokenizer } from '../../src/engine/model/tokenizer';
import { GEMMA3_TOKENIZER_JSON, referenceTokenizer, tokenizerCorpus } from './tokenizer-helpers';
import { tempDir } from './temp-helpers';

let tok: Tokenizer;
let constructMs = 0;

test('builds the real Gemma 3 tokenizer from tokenizer.json', () => {
  const t0 = performance.now();
  tok = createTokenizer({ kind: 'tokenizer.json', path: GEMMA3_TOKENIZER_JSON });
  constructMs = performance.now() - t0;
  assert.equal(tok.vocabSize, 262145); // 262144 pieces plus <image_soft_token> as an added token
  assert.deepEqual(tok.specials, { bos: 2, eos: 1, pad: 0, unk: 3, startOfTurn: 105, endOfTurn: 106 });
  console.log(`tokenizer.json construction: ${constructMs.toFixed(0)} ms`);
});

test('gives the reference ids on the tricky corpus', () => {
  const ref = referenceTokenizer();
  const corpus = tokenizerCorpus();
  let checked = 0;
  for (const s of corpus) {
    assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }), `ids of ${JSON.stringify(s).slice(0, 120)}`);
    checked++;
  }
  assert.ok(checked > 200);
});

test('known ids: words, whitespace runs, newlines, special-token strings', () => {
  assert.deepEqual(tok.encode('Hello world'), [9259, 1902]);
  assert.deepEqual(tok.encode('  leading'), [138, 26016]); // "▁▁" is one token
  assert.deepEqual(tok.encode('a  b\n\n\tc'), [236746, 138, 236763, 108, 255968, 236755]);
  assert.deepEqual(tok.encode('<start_of_turn>user\nhi<end_of_turn>'), [105, 2364, 107, 2202, 106]);
  assert.deepEqual(tok.encode(''), []);
});

test('decode(encode(x)) == x on the corpus', () => {
  // A literal "▁" is the space marker itself: it decodes to a space, in Hugging Face too (next test).
  for (const s of tokenizerCorpus()) assert.equal(tok.decode(tok.encode(s)), s.replaceAll('▁', ' '), JSON.stringify(s).slice(0, 120));
});

test('decode matches the reference, with and without special tokens', () => {
  const ref = referenceTokenizer();
  for (const s of tokenizerCorpus().slice(0, 80)) {
    const ids = tok.encode(s);
    if (ids.length === 0) continue; // the reference refuses an empty list
    assert.equal(tok.decode(ids), ref.decode(ids, { skip_special_tokens: false }), JSON.stringify(s));
  }
  assert.equal(tok.decode([2, 9259, 1902, 106], { skipSpecial: true }), 'Hello world');
});

test('offsets point at each token’s text', () => {
  const s = 'Hi 中文 <end_of_turn>\n😀\u{10ffff}x';
  const { ids, starts } = tok.encodeWithOffsets(s);
  assert.equal(ids.length, starts.length);
  // Tokens sharing a start are the byte pieces of one character; together they decode to its text.
  for (let i = 0; i < ids.length; ) {
    let j = i + 1;
    while (j < ids.length && starts[j] === starts[i]) j++;
    const end = j < ids.length ? starts[j] : s.length;
    assert.equal(tok.decode(ids.slice(i, j)), s.slice(starts[i], end));
    i = j;
  }
});

test('encodes 2 KB of text in a few ms', () => {
  const text = fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8').repeat(4).slice(0, 2048);
  tok.encode(text);
  const t0 = performance.now();
  const n = 20;
  for (let i = 0; i < n; i++) tok.encode(text + i);
  const ms = (performance.now() - t0) / n;
  console.log(`encode 2 KB: ${ms.toFixed(2)} ms`);
  assert.ok(ms < 50, `encode took ${ms} ms`);
});

test('refuses unreadable and unsupported tokenizer.json files, naming the file', (t) => {
  const dir = tempDir('tok-', t);
  const write = (name: string, body: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, body);
    return f;
  };
  const cases: [string, string, RegExp][] = [
    ['missing.json', '', /cannot read/],
    ['bad.json', '{"model": ', /not valid JSON/],
    ['wordpiece.json', JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }), /model type "WordPiece" is not supported/],
    ['bytelevel.json', JSON.stringify({ pre_tokenizer: { type: 'ByteLevel' }, model: { type: 'BPE', vocab: { a: 0 }, merges: [] } }), /pre_tokenizer/],
    ['merge.json', JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [['a', 'zz']] } }), /merge 0 .* not in the vocabulary/],
    ['ids.json', JSON.stringify({ model: { type: 'BPE', vocab: { a: -1 }, merges: [] } }), /is not a token id/],
  ];
  for (const [name, body, re] of cases) {
    const f = name === 'missing.json' ? path.join(dir, name) : write(name, body);
    assert.throws(() => createTokenizer({ kind: 'tokenizer.json', path: f }), (e: unknown) => e instanceof TokenizerError && e.message.startsWith(f) && re.test(e.message));
  }
});
