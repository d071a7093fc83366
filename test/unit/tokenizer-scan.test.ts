// The fast tokenizer.json reader must agree with JSON.parse on every shape it accepts (escapes, legacy
// "a b" merges, merges before the vocabulary, repeated keys) and hand everything else back to JSON.parse.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { scanTokenizerJson } from '../../src/engine/model/tokenizerJsonScan';
import { compileTokenizerJson } from '../../src/engine/model/tokenizerJson';
import { GEMMA3_TOKENIZER_JSON } from './tokenizer-helpers';

/** What the JSON.parse path makes of the same text: vocab map and merges as id pairs. */
function viaJsonParse(text: string): { vocab: Map<string, number>; pairs: number[] } {
  const j = JSON.parse(text) as { model: { vocab: Record<string, number>; merges: (string | [string, string])[] } };
  const vocab = new Map(Object.entries(j.model.vocab));
  const pairs = j.model.merges.flatMap((m) => (typeof m === 'string' ? m.split(' ') : m)).map((p) => vocab.get(p)!);
  return { vocab, pairs };
}

test('agrees with JSON.parse on escapes, legacy merges, merge order and repeated keys', () => {
  const texts = [
    '{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"\\n":3,"\\u00e9":4,"\\"q":5,"é\\u00e9":6},"merges":[["a","b"],["é","é"],["\\u00e9","\\u00e9"]]},"added_tokens":[]}',
    '{ "added_tokens" : [ ] ,\n "model" : {\n "merges" : [ "a b" ] ,\n "vocab" : { "a" : 0 , "b" : 1 , "ab" : 2 } } }',
    '{"model":{"vocab":{"a":0,"a":7,"b":1,"ab":2},"merges":[["a","b"]]}}',
    '{"model":{"vocab":{},"merges":[]}}',
  ];
  for (const text of texts) {
    const s = scanTokenizerJson(Buffer.from(text));
    assert.ok(s, text);
    const ref = viaJsonParse(text);
    assert.deepEqual([...s.vocab], [...ref.vocab], text);
    assert.deepEqual([...s.mergePairs], ref.pairs, text);
    assert.equal((s.rest.model as Record<string, unknown>).vocab, undefined);
  }
});

test('hands unusual files back to JSON.parse (returns null)', () => {
  for (const text of [
    '{"model":{"vocab":{"a":1.5},"merges":[]}}', // not an integer id
    '{"model":{"vocab":{"a":0},"merges":[["a","zz"]]}}', // a merge piece outside the vocabulary
    '{"model":{"merges":[]}}', // no vocabulary
    '{"model":{"vocab":{"a":0}}} trailing',
    '[1, 2]',
  ]) {
    assert.equal(scanTokenizerJson(Buffer.from(text)), null, text);
  }
});

test('on the real Gemma 3 tokenizer.json it reads what JSON.parse reads', () => {
  const buf = fs.readFileSync(GEMMA3_TOKENIZER_JSON);
  const s = scanTokenizerJson(buf);
  assert.ok(s);
  const ref = viaJsonParse(buf.toString('utf8'));
  assert.equal(s.vocab.size, ref.vocab.size);
  for (const [k, v] of ref.vocab) assert.equal(s.vocab.get(k), v, k);
  assert.equal(s.mergePairs.length, ref.pairs.length);
  for (let i = 0; i < ref.pairs.length; i++) if (s.mergePairs[i] !== ref.pairs[i]) assert.fail(`merge pair ${i >> 1} differs`);
  // Both paths build tokenizers with the same ids.
  const j = JSON.parse(buf.toString('utf8')) as unknown;
  assert.ok(compileTokenizerJson(j, GEMMA3_TOKENIZER_JSON).pieces.length === 262145);
});
