// The JSON shape automaton: every accepted path parses to exactly the fields, rejects what JSON or the
// shape forbids, and its closing always completes the object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonAutomaton, REJECT, validateShape, type JsonShape } from '../../src/engine/generate/jsonShape';
import { Rng } from '../../src/engine/rng';

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function accepts(a: JsonAutomaton, text: string | Uint8Array): boolean {
  const bytes = typeof text === 'string' ? enc.encode(text) : text;
  return a.run(a.start, bytes) === a.done;
}

const shape: JsonShape = { fields: [{ name: 'name' }, { name: 'kind', enum: ['bug', 'bugfix', 'feature', 'é"q'] }, { name: 'note\n"x"' }] };

test('canonical JSON of the shape is accepted, with any string content', () => {
  const a = new JsonAutomaton(shape);
  for (const name of ['', 'Ada', 'line\nbreak "quoted" \\ back', 'tab\t€ 𝄞 日本', '\u0001\u001f']) {
    for (const kind of ['bug', 'bugfix', 'feature', 'é"q']) {
      const text = JSON.stringify({ name, kind, 'note\n"x"': 'z' });
      assert.ok(accepts(a, text), text);
    }
  }
  assert.ok(accepts(a, '{"name":"\\u00e9\\/\\b\\f\\r\\t","kind":"bug","note\\n\\"x\\"":""}'));
});

test('what JSON or the shape forbids is rejected', () => {
  const a = new JsonAutomaton(shape);
  const ok = (name: string, kind = 'bug'): string => `{"name":"${name}","kind":"${kind}","note\\n\\"x\\"":""}`;
  assert.ok(accepts(a, ok('x')));
  assert.ok(!accepts(a, ok('raw\nnewline')));
  assert.ok(!accepts(a, ok('bad \\q escape')));
  assert.ok(!accepts(a, ok('\\u12g4')));
  assert.ok(!accepts(a, ok('x', 'bu')));
  assert.ok(!accepts(a, ok('x', 'bugs')));
  assert.ok(!accepts(a, '{"name": "x","kind":"bug","note\\n\\"x\\"":""}'), 'whitespace is fixed');
  assert.ok(!accepts(a, '{"kind":"bug","name":"x","note\\n\\"x\\"":""}'), 'order is fixed');
  // Invalid UTF-8: a lone continuation byte, an overlong, a surrogate, a truncated character.
  for (const bad of [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    const bytes = new Uint8Array([...enc.encode('{"name":"'), ...bad, ...enc.encode('","kind":"bug","note\\n\\"x\\"":""}')]);
    assert.ok(!accepts(a, bytes), bad.join(','));
  }
});

test('random walks over allowed bytes, closed canonically, always parse to exactly the fields', () => {
  const a = new JsonAutomaton(shape);
  const rng = new Rng(17);
  for (let walk = 0; walk < 500; walk++) {
    let s = a.start;
    const out: number[] = [];
    const steps = Math.floor(rng.next() * 80);
    for (let i = 0; i < steps && s !== a.done; i++) {
      const allowed: number[] = [];
      for (let b = 0; b < 256; b++) if (a.trans[s * 256 + b] !== REJECT) allowed.push(b);
      const b = allowed[Math.floor(rng.next() * allowed.length)];
      out.push(b);
      s = a.trans[s * 256 + b];
    }
    const close = a.closingBytes(s);
    assert.equal(close.length, a.closeLen[s]);
    const bytes = Uint8Array.from([...out, ...close]);
    assert.equal(a.run(a.start, bytes), a.done);
    const obj = JSON.parse(dec.decode(bytes)) as Record<string, string>;
    assert.deepEqual(Object.keys(obj), ['name', 'kind', 'note\n"x"']);
    assert.ok(['bug', 'bugfix', 'feature', 'é"q'].includes(obj.kind));
    assert.ok(Object.values(obj).every((v) => typeof v === 'string'));
  }
});

test('closing from the start is the shortest object: empty strings and the shortest enum value', () => {
  const a = new JsonAutomaton(shape);
  assert.equal(dec.decode(a.closingBytes(a.start)), '{"name":"","kind":"bug","note\\n\\"x\\"":""}');
});

test('bad shapes are refused with a reason', () => {
  assert.throws(() => validateShape({ fields: [] }), /no fields/);
  assert.throws(() => validateShape({ fields: [{ name: 'a' }, { name: 'a' }] }), /twice/);
  assert.throws(() => validateShape({ fields: [{ name: 'a', enum: [] }] }), /empty/);
  assert.throws(() => validateShape({ fields: [{ name: '' }] }), /empty/);
});
