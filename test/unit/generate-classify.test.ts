// Label scoring against a brute-force computation: each label's log-probability from one full forward
// over prompt + label (no cache, no fork), on a tiny random model in f32.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { classify, END_OF_TURN } from '../../src/engine/generate/labelScoring';
import { chatPromptIds, type OpenModel } from '../../src/engine/generate/openModel';
import { openTiny } from './generate-helpers';

let m: OpenModel & { dir: string };
before(async () => {
  m = await openTiny(5);
});
after(async () => {
  await m.runtime.dispose();
  fs.rmSync(m.dir, { recursive: true, force: true });
});

/** log softmax(logits)[id] of row `row` of a [T, V] block, in float64, computed here as plainly as it can be. */
function logProbAt(logits: Float32Array, V: number, row: number, id: number): number {
  const x = Array.from(logits.subarray(row * V, (row + 1) * V));
  const max = x.reduce((m, v) => Math.max(m, v), -Infinity);
  return x[id] - max - Math.log(x.reduce((s, v) => s + Math.exp(v - max), 0));
}

/** log P(label | prompt) from one forward over the whole sequence. */
async function bruteForce(prompt: number[], label: number[]): Promise<number> {
  const V = m.runtime.config.vocabSize;
  const c = m.runtime.newCache();
  try {
    const logits = await m.runtime.step(c, [...prompt, ...label], { logits: 'all' });
    let lp = 0;
    for (let k = 0; k < label.length; k++) lp += logProbAt(logits, V, prompt.length - 1 + k, label[k]);
    return lp;
  } finally {
    c.dispose();
  }
}

test('label log-probs equal a full forward, for shared prefixes and different lengths, with and without a terminator', async () => {
  const prompt = [2, 105, 300, 320, 330, 340, 350, 106, 107, 105, 360, 107];
  // 300 is shared by three labels; one label is a prefix of another; lengths 1 to 5.
  const labelIds = [[300], [300, 301], [300, 301, 302, 303, 304], [400, 401], [410]];
  const labels = labelIds.map((_, i) => `L${i}`);
  for (const terminator of [END_OF_TURN, null]) {
    const r = await classify(m.runtime, m.gen, { promptIds: prompt, labels, labelIds, terminator });
    let z = 0;
    for (let i = 0; i < labels.length; i++) {
      const ids = terminator === null ? labelIds[i] : [...labelIds[i], terminator];
      assert.deepEqual(r.scores[i].ids, ids);
      const want = await bruteForce(prompt, ids);
      assert.ok(Math.abs(r.scores[i].logprob - want) < 1e-4, `${labels[i]}: ${r.scores[i].logprob} vs ${want}`);
      z += r.scores[i].probability;
    }
    assert.ok(Math.abs(z - 1) < 1e-12);
    const best = r.scores.reduce((a, b) => (b.logprob > a.logprob ? b : a));
    assert.equal(r.label, best.label);
    assert.equal(r.probability, best.probability);
  }
});

test('text labels are encoded by the model tokenizer and scored after the chat prompt', async () => {
  const prompt = chatPromptIds(m.tokenizer!, [{ role: 'user', content: 'Is this a bug report? The app crashes.' }]);
  const labels = ['bug', 'bugfix', 'feature request', 'question'];
  const r = await classify(m.runtime, m.gen, { promptIds: prompt, labels });
  assert.ok(labels.includes(r.label));
  for (const s of r.scores) {
    assert.deepEqual(s.ids, [...m.tokenizer!.encode(s.label), END_OF_TURN]);
    const want = await bruteForce(prompt, s.ids);
    assert.ok(Math.abs(s.logprob - want) < 1e-4);
  }
});

test('bad label sets are refused with a reason', async () => {
  const promptIds = [2, 300];
  await assert.rejects(classify(m.runtime, m.gen, { promptIds, labels: [] }), /no labels/);
  await assert.rejects(classify(m.runtime, m.gen, { promptIds, labels: ['a', ''] }), /empty/);
  await assert.rejects(classify(m.runtime, m.gen, { promptIds, labels: ['a', 'b'], labelIds: [[300], [300]] }), /same tokens/);
  await assert.rejects(classify(m.runtime, m.gen, { promptIds, labels: ['a'], labelIds: [[100000]] }), /outside the vocabulary/);
  await assert.rejects(classify(m.runtime, undefined, { promptIds, labels: ['a'] }), /tokenizer/);
});
