// JSONL formats and their errors, label masks from assistant spans, right-padded micro-batches with
// shifted label positions, the validation split, metrics and early stopping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseExamples, readExamples, DataError } from '../../src/engine/train/examples';
import { tokenizeExample, IGNORE, type ExampleRenderer } from '../../src/engine/train/tokenize';
import { collate, planSteps, runsOf } from '../../src/engine/train/batch';
import { stepsPerEpoch } from '../../src/engine/train/plan';
import { splitValidation } from '../../src/engine/train/split';
import { exactMatch, exactMatchRate, labelAccuracy } from '../../src/engine/train/metrics';
import { EarlyStopping } from '../../src/engine/train/earlyStop';
import { tempDir } from './temp-helpers';

test('parses the three JSONL formats, with ids', () => {
  const text = [
    '{"id":"a","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"yo"}]}]}',
    '',
    '{"prompt":"2+2=","completion":"4"}',
    '{"prompt":[{"role":"user","content":"q"}],"completion":[{"role":"assistant","content":"a"}]}',
    '{"id":7,"input_ids":[2,5,6,7],"labels":[-100,-100,6,7]}',
    '{"input_ids":[2,5,6]}',
  ].join('\n');
  const ex = parseExamples(text, 'd.jsonl');
  assert.deepEqual(ex.map((e) => [e.kind, e.id, e.line]), [
    ['conversation', 'a', 1], ['prompt-completion', '#3', 3], ['prompt-completion', '#4', 4], ['tokens', '7', 5], ['tokens', '#6', 6],
  ]);
  assert.equal(ex[0].kind === 'conversation' && ex[0].messages[1].content, 'yo');
  assert.deepEqual(ex[4].kind === 'tokens' && ex[4].labels, [2, 5, 6], 'labels default to the input ids');
});

test('a corrupt line is an error naming file:line and the problem', () => {
  const cases: Array<[string, RegExp]> = [
    ['{"input_ids":[2,3]}\n{oops', /d\.jsonl:2: not valid JSON/],
    ['[1,2]', /d\.jsonl:1: a line must be a JSON object/],
    ['{"text":"hello"}', /d\.jsonl:1: unknown format/],
    ['{"messages":[{"role":"user","content":"x"}]}', /d\.jsonl:1: .*no assistant turn/],
    ['{"messages":[{"role":"robot","content":"x"}]}', /d\.jsonl:1: "messages"\[0\]\.role/],
    ['{"prompt":"x"}', /d\.jsonl:1: prompt-completion needs both/],
    ['{"prompt":"x","completion":[{"role":"assistant","content":"y"}]}', /must both be strings or both message lists/],
    ['{"input_ids":[2,3,4],"labels":[-100,3]}', /d\.jsonl:1: "labels" has 2 entries for 3/],
    ['{"input_ids":[2,3.5]}', /d\.jsonl:1: "input_ids"\[1\] = 3\.5 is not a valid token id/],
    ['{"input_ids":[2,3,4],"labels":[-100,-100,-100]}', /nothing to learn/],
    ['{"input_ids":[2,3,4],"labels":[-100,-5,4]}', /-100 only/],
    ['{"id":"x","input_ids":[2,3]}\n{"id":"x","input_ids":[2,3]}', /d\.jsonl:2: id "x" is used again \(first at line 1\)/],
    ['\n\n', /d\.jsonl: no examples/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseExamples(text, 'd.jsonl'), (e: Error) => e instanceof DataError && re.test(e.message), re.source);
  assert.throws(() => readExamples('/nonexistent/x.jsonl'), /x\.jsonl: cannot read \(ENOENT\)/);
});

// A real (if small) renderer: Gemma's template over a character vocabulary, reporting assistant spans
// as content + <end_of_turn>.
const SOT = 105, EOT = 106, NL = 10;
const enc = (s: string) => Array.from(s, (c) => 200 + (c.charCodeAt(0) % 50));
const renderer: ExampleRenderer = {
  bosId: 2, eosId: 1, vocabSize: 512,
  encode: enc,
  renderChat(messages) {
    const ids = [2];
    const spans: Array<[number, number]> = [];
    for (const m of messages) {
      const role = m.role === 'assistant' ? 'model' : 'user';
      ids.push(SOT, ...enc(role), NL);
      const start = ids.length;
      ids.push(...enc(m.content), EOT);
      if (role === 'model') spans.push([start, ids.length]);
      ids.push(NL);
    }
    return { ids, assistantSpans: spans };
  },
};

test('labels cover exactly the assistant spans the renderer reports', () => {
  const [conv, pcText, pcChat] = parseExamples([
    '{"messages":[{"role":"user","content":"ab"},{"role":"assistant","content":"c"},{"role":"user","content":"d"},{"role":"assistant","content":"ef"}]}',
    '{"prompt":"ab","completion":"cd"}',
    '{"prompt":[{"role":"user","content":"ab"},{"role":"assistant","content":"x"},{"role":"user","content":"y"}],"completion":[{"role":"assistant","content":"z"}]}',
  ].join('\n'), 't.jsonl');
  const t = tokenizeExample(conv, renderer, 1024);
  const { ids, assistantSpans } = renderer.renderChat(conv.kind === 'conversation' ? conv.messages : []);
  assert.deepEqual(t.inputIds, ids);
  const want = ids.map((id, i) => (assistantSpans.some(([s, e]) => i >= s && i < e) ? id : IGNORE));
  assert.deepEqual(t.labels, want);
  assert.equal(t.labels.filter((l) => l !== IGNORE).length, 1 + 1 + 2 + 1);

  const p = tokenizeExample(pcText, renderer, 1024);
  assert.deepEqual(p.inputIds, [2, ...enc('ab'), ...enc('cd'), 1]);
  assert.deepEqual(p.labels, [IGNORE, IGNORE, IGNORE, ...enc('cd'), 1]);

  // conversational prompt-completion: the assistant turn inside the prompt gets no loss
  const c = tokenizeExample(pcChat, renderer, 1024);
  assert.deepEqual(c.labels.filter((l) => l !== IGNORE), [...enc('z'), EOT]);
  assert.throws(() => tokenizeExample(conv, undefined, 1024), /needs|tokenizer/);
  assert.throws(() => tokenizeExample(conv, renderer, 5), /no assistant tokens to learn within 5 tokens/);
});

test('collate right-pads, shifts labels and counts every label token of the batch', () => {
  const a = { id: 'a', inputIds: [2, 5, 6, 7], labels: [IGNORE, IGNORE, 6, 7] };
  const b = { id: 'b', inputIds: [2, 8, 9, 10, 11, 12], labels: [IGNORE, IGNORE, IGNORE, 10, IGNORE, 12] };
  const mb = collate([a, b], 0);
  assert.equal(mb.T, 6);
  assert.deepEqual(Array.from(mb.inputIds), [2, 5, 6, 7, 0, 0, 2, 8, 9, 10, 11, 12]);
  // position t predicts labels[t+1]: a → t=1 (6), t=2 (7); b → t=2 (10), t=4 (12)
  assert.deepEqual(Array.from(mb.labelPositions), [1, 2, 6 + 2, 6 + 4]);
  assert.deepEqual(Array.from(mb.labelTargets), [6, 7, 10, 12]);
  assert.equal(mb.tokens, 10);
  const plan = planSteps([a, b, a, b, a], 2, 2, 0);
  assert.deepEqual(plan.map((s) => s.map((m) => m.B)), [[2, 2], [1]]);
  assert.equal(stepsPerEpoch(5, 2, 2), 2);
  assert.equal(stepsPerEpoch(20, 4, 1), 5);
});

test('a batch runs in pieces of at most the token budget, longest first, every label kept', () => {
  const ex = (id: string, n: number) => ({ id, inputIds: Array.from({ length: n }, (_, i) => 3 + i), labels: Array.from({ length: n }, (_, i) => (i >= n - 2 ? 3 + i : IGNORE)) });
  const batch = [ex('a', 3), ex('b', 10), ex('c', 4), ex('d', 9)];
  const runs = runsOf(batch, 0, 20);
  assert.deepEqual(runs.map((r) => r.ids), [['b', 'd'], ['c', 'a']]);
  assert.deepEqual(runs.map((r) => r.T), [10, 4], 'short examples are padded to their own run, not to the longest');
  assert.equal(runs.reduce((s, r) => s + r.labelTargets.length, 0), collate(batch, 0).labelTargets.length);
  assert.equal(runs.reduce((s, r) => s + r.tokens, 0), 26);
  // an example longer than the budget still runs, alone
  assert.deepEqual(runsOf([ex('x', 30), ex('y', 2)], 0, 20).map((r) => r.ids), [['x'], ['y']]);
  // label positions are budgeted too (each example here has 2)
  assert.deepEqual(runsOf(batch, 0, 40, 4).map((r) => r.ids), [['b', 'd'], ['c', 'a']]);
  assert.deepEqual(runsOf(batch, 0, 40, 3).map((r) => r.ids), [['b'], ['d'], ['c'], ['a']]);
  // a step is its batches' runs: 4 examples per batch, 2 batches accumulated
  const plan = planSteps([...batch, ...batch], 4, 2, 0, 20);
  assert.deepEqual(plan.map((s) => s.map((m) => m.B)), [[2, 2, 2, 2]]);
  assert.deepEqual(planSteps(batch, 4, 1, 0).map((s) => s.map((m) => m.B)), [[4]], 'within the default budget one run');
});

test('validation split: ~20% from 10 examples, none below, seeded, pinnable', () => {
  const items = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `e${i}` }));
  assert.equal(splitValidation(items(9), { fraction: 0.2, seed: 1 }).val.length, 0);
  const s = splitValidation(items(20), { fraction: 0.2, seed: 1 });
  assert.equal(s.val.length, 4);
  assert.equal(s.train.length, 16);
  assert.deepEqual(splitValidation(items(20), { fraction: 0.2, seed: 1 }), s);
  assert.notDeepEqual(splitValidation(items(20), { fraction: 0.2, seed: 2 }).val, s.val);
  assert.equal(splitValidation(items(12), { fraction: 0.2, seed: 1 }).val.length, 2);
  assert.equal(splitValidation(items(20), { fraction: 0, seed: 1 }).val.length, 0);
  const pinned = splitValidation(items(5), { fraction: 0.2, seed: 1, pinned: new Set(['e1', 'e3']) });
  assert.deepEqual(pinned.val.map((e) => e.id), ['e1', 'e3']);
  assert.throws(() => splitValidation(items(5), { fraction: 0.2, seed: 1, pinned: new Set(['nope']) }), /nope/);
});

test('metrics: exact match ignores surrounding whitespace, labels ignore case', () => {
  assert.ok(exactMatch(' {"a": "b"}\n', '{"a": "b"}'));
  assert.ok(!exactMatch('{"a":"b"}', '{"a": "b"}'));
  assert.equal(exactMatchRate([{ prediction: 'x', expected: 'x' }, { prediction: 'y', expected: 'x' }]), 0.5);
  assert.equal(labelAccuracy([{ prediction: 'Positive', expected: 'positive' }, { prediction: 'neg', expected: 'positive' }]), 0.5);
  assert.ok(Number.isNaN(labelAccuracy([])));
});

test('early stopping keeps the best step and stops after `patience` evaluations without improvement', () => {
  const es = new EarlyStopping(2);
  assert.deepEqual(es.observe(1.0, 5), { improved: true, stop: false });
  assert.deepEqual(es.observe(0.8, 10), { improved: true, stop: false });
  assert.deepEqual(es.observe(0.9, 15), { improved: false, stop: false });
  assert.deepEqual(es.observe(0.85, 20), { improved: false, stop: true });
  assert.equal(es.bestStep, 10);
  const never = new EarlyStopping(0);
  for (let i = 0; i < 5; i++) assert.equal(never.observe(1 + i, i).stop, false);
});

test('readExamples reads a file from disk', (t) => {
  const dir = tempDir('train-data-', t);
  const f = path.join(dir, 'x.jsonl');
  fs.writeFileSync(f, '{"input_ids":[2,3,4]}\n');
  assert.equal(readExamples(f).length, 1);
});
