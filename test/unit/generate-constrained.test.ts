// Constrained extraction on a real runtime: random weights, sampled at temperature 1 on many seeds,
// must still give JSON that parses to exactly the fields, with both the tiny model's own synthetic
// tokenizer and the real Gemma 3 tokenizer (262,144 ids) driving a model of the full vocabulary.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { extract, JsonConstraintTable, packVocab } from '../../src/engine/generate/constrained';
import { chatPromptIds, type OpenModel } from '../../src/engine/generate/openModel';
import type { JsonShape } from '../../src/engine/generate/jsonShape';
import { openRealVocab, openTiny } from './generate-helpers';

let tiny: OpenModel & { dir: string };
before(async () => {
  tiny = await openTiny(9);
});
after(async () => {
  await tiny.runtime.dispose();
  fs.rmSync(tiny.dir, { recursive: true, force: true });
});

const shapes: JsonShape[] = [
  { fields: [{ name: 'name' }, { name: 'email' }] },
  { fields: [{ name: 'severity', enum: ['low', 'medium', 'high', 'hi'] }, { name: 'summary' }] },
  { fields: [{ name: 'quote "q"\n' }, { name: 'ok', enum: ['yes', 'no'] }, { name: 'ünï' }] },
];

function checkValue(shape: JsonShape, text: string, value: Record<string, string> | null): void {
  assert.ok(value);
  assert.deepEqual(JSON.parse(text), value);
  assert.deepEqual(Object.keys(value), shape.fields.map((f) => f.name));
  for (const f of shape.fields) {
    assert.equal(typeof value[f.name], 'string');
    if (f.enum) assert.ok(f.enum.includes(value[f.name]), `${f.name}=${value[f.name]}`);
  }
}

test('extraction always parses with exactly the fields on many seeds (tiny model, its own tokenizer)', async () => {
  const prompt = chatPromptIds(tiny.tokenizer!, [{ role: 'user', content: 'Extract the fields.' }]);
  let runs = 0;
  for (const shape of shapes) {
    const table = new JsonConstraintTable(shape, packVocab(tiny.gen!));
    for (let seed = 0; seed < 8; seed++) {
      const maxTokens = table.closeCost(table.automaton.start) + seed * 5;
      const r = await extract(tiny.runtime, tiny.gen!, { promptIds: prompt, shape, maxTokens, sampling: { temperature: 1, seed }, table });
      assert.equal(r.finishReason, 'stop');
      assert.ok(r.tokens.length <= maxTokens);
      checkValue(shape, r.text, r.value);
      runs++;
    }
    const greedy = await extract(tiny.runtime, tiny.gen!, { promptIds: prompt, shape, maxTokens: 64, sampling: { temperature: 0 }, table });
    checkValue(shape, greedy.text, greedy.value);
  }
  assert.equal(runs, 24);
});

test('the tightest budget still closes the object; a smaller one is refused', async () => {
  const shape = shapes[1];
  const table = new JsonConstraintTable(shape, packVocab(tiny.gen!));
  const need = table.closeCost(table.automaton.start);
  const r = await extract(tiny.runtime, tiny.gen!, { promptIds: [2, 300], shape, maxTokens: need, sampling: { temperature: 1, seed: 4 }, table });
  checkValue(shape, r.text, r.value);
  await assert.rejects(extract(tiny.runtime, tiny.gen!, { promptIds: [2, 300], shape, maxTokens: need - 1, sampling: { temperature: 0 } }), /too small/);
});

test('a cancelled extraction returns no value', async () => {
  const controller = new AbortController();
  controller.abort();
  const r = await extract(tiny.runtime, tiny.gen!, { promptIds: [2, 300], shape: shapes[0], maxTokens: 50, sampling: { temperature: 0 }, signal: controller.signal });
  assert.equal(r.finishReason, 'cancelled');
  assert.equal(r.value, null);
});

test('with the real Gemma 3 tokenizer on a full-vocabulary random model, output parses on every seed', async () => {
  const m = await openRealVocab(2);
  try {
    const { tokenizer: gemma, gen } = m;
    const prompt = chatPromptIds(gemma, [{ role: 'user', content: 'Who wrote "Dune"? Answer as JSON.' }]);
    for (const shape of shapes) {
      const table = new JsonConstraintTable(shape, packVocab(gen));
      for (let seed = 0; seed < 2; seed++) {
        const maxTokens = table.closeCost(table.automaton.start) + 4;
        const r = await extract(m.runtime, gen, { promptIds: prompt, shape, maxTokens, sampling: { temperature: 1, seed }, table });
        checkValue(shape, r.text, r.value);
        // The text is what the tokenizer decodes the tokens to.
        assert.equal(gemma.decode(r.tokens), r.text);
      }
    }
  } finally {
    await m.close();
  }
});
