// Decoding: byte-fallback runs reassembled as Hugging Face's decoder chain does, the streaming decoder
// used in generation (never a partial character), and tokenToPiece for constrained decoding.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createTokenizer, type Tokenizer } from '../../src/engine/model/tokenizer';
import { GEMMA3_TOKENIZER_JSON, referenceTokenizer, tokenizerCorpus } from './tokenizer-helpers';

let tok: Tokenizer;
test('load the Gemma 3 tokenizer', () => {
  tok = createTokenizer({ kind: 'tokenizer.json', path: GEMMA3_TOKENIZER_JSON });
});

const byteId = (b: number): number => tok.pieceId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!;

test('byte-fallback runs decode like Hugging Face, invalid UTF-8 as one U+FFFD per byte', () => {
  const ref = referenceTokenizer();
  const hello = tok.encode('hello');
  const valid = [
    [byteId(0xf4), byteId(0x8f), byteId(0xbf), byteId(0xbf), ...hello], // U+10FFFF
    [byteId(0xc3), byteId(0xa9), 2, byteId(0x41)],
  ];
  for (const ids of valid) assert.equal(tok.decode(ids), ref.decode(ids, { skip_special_tokens: false }), JSON.stringify(ids));
  assert.equal(tok.decode(valid[0]), '\u{10ffff}hello');
  // Invalid runs: the tokenizers crate's ByteFallback decoder (decoders/byte_fallback.rs) pushes one "�"
  // per byte of a run that is not valid UTF-8; the JS reference port differs here, so the values are Rust's.
  assert.equal(tok.decode([byteId(0xe4), byteId(0xb8), ...hello]), '\uFFFD\uFFFDhello');
  assert.equal(tok.decode([...hello, byteId(0xff), byteId(0x41)]), 'hello\uFFFD\uFFFD');
  assert.equal(tok.decode([byteId(0xc3), 2, byteId(0xa9)]), '\uFFFD<bos>\uFFFD'); // a token between splits the run
  assert.equal(tok.decode([999_999_999, -1, 1.5, ...hello]), 'hello'); // ids outside the vocabulary are skipped
});

test('the stream decoder emits whole characters only, and in total what decode gives', () => {
  for (const s of tokenizerCorpus()) {
    const ids = tok.encode(s);
    const dec = tok.streamDecoder();
    let out = '';
    for (const id of ids) {
      const chunk = dec.push(id);
      assert.ok(!/[\uD800-\uDBFF]$|^[\uDC00-\uDFFF]/.test(chunk), `partial surrogate pair in ${JSON.stringify(chunk)}`);
      assert.ok(!chunk.includes('\uFFFD') || s.includes('\uFFFD'), `replacement character from ${JSON.stringify(s)}`);
      out += chunk;
    }
    out += dec.flush();
    assert.equal(out, tok.decode(ids, { skipSpecial: true }), JSON.stringify(s).slice(0, 100));
  }
});

test('the stream decoder holds bytes until the character is complete', () => {
  const dec = tok.streamDecoder();
  assert.deepEqual([0xf0, 0x9f, 0xa6].map((b) => dec.push(byteId(b))), ['', '', '']);
  assert.equal(dec.push(byteId(0x99)), '🦙');
  assert.equal(dec.push(byteId(0xe4)), '');
  assert.equal(dec.push(106), ''); // <end_of_turn> is skipped and does not end the character
  assert.equal(dec.push(tok.pieceId('▁the')!), '\uFFFD the'); // a text token ends the cut-off character
  assert.equal(dec.push(byteId(0xc3)), '');
  assert.equal(dec.flush(), '\uFFFD');
  const withSpecials = tok.streamDecoder({ skipSpecial: false });
  assert.equal(withSpecials.push(106), '<end_of_turn>');
});

test('tokenToPiece: the exact text each token appends, a raw byte, or special', () => {
  for (const id of [0, 1, 2, 3, 105, 106, tok.pieceId('<unused0>')!, tok.pieceId('<mask>')!, 262144]) {
    assert.deepEqual(tok.tokenToPiece(id), { kind: 'special' }, `id ${id}`);
  }
  assert.deepEqual(tok.tokenToPiece(tok.pieceId('▁the')!), { kind: 'text', text: ' the' });
  assert.deepEqual(tok.tokenToPiece(107), { kind: 'text', text: '\n' });
  assert.deepEqual(tok.tokenToPiece(138), { kind: 'text', text: '  ' });
  assert.deepEqual(tok.tokenToPiece(byteId(0x0a)), { kind: 'byte', byte: 0x0a });
  assert.deepEqual(tok.tokenToPiece(-5), { kind: 'special' });

  // Every id, as a constrained decoder would tabulate them; texts concatenate to decode's output.
  const t0 = performance.now();
  let texts = 0;
  for (let id = 0; id < tok.vocabSize; id++) if (tok.tokenToPiece(id).kind === 'text') texts++;
  console.log(`tokenToPiece over ${tok.vocabSize} ids: ${(performance.now() - t0).toFixed(0)} ms, ${texts} text tokens`);
  assert.ok(texts > 250_000);
  const ids = tok.encode('{"name": "Ada",\n  "x": [1, 2]}');
  const joined = ids.map((id) => tok.tokenToPiece(id)).map((p) => (p.kind === 'text' ? p.text : '?')).join('');
  assert.equal(joined, tok.decode(ids));
});
