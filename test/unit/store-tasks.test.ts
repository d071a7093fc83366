// The task store on a real temporary folder: layout, TRL lines, validation, damaged files.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exampleFromLine, splitExamples } from '../../src/store/examples';
import { parseJsonl } from '../../src/store/jsonl';
import { isSafeFolderName, safeFolderName, uniqueFolderName } from '../../src/store/names';
import { DEFAULT_HYPERPARAMETERS, hyperparametersToCliArgs, newTaskConfig, parseList, validateTaskConfig } from '../../src/store/task';
import { TaskFileError, TaskStore } from '../../src/store/taskStore';
import { tempDir } from './temp-helpers';

const root = tempDir('gemma-store-');

async function newStore(onBackup?: (file: string, backup: string) => void) {
  const ws = await fs.mkdtemp(path.join(root, 'ws-'));
  return { ws, store: TaskStore.forWorkspace(ws, { onBackup }) };
}

async function lines(file: string): Promise<Record<string, unknown>[]> {
  return (await fs.readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

test('safe folder names', () => {
  assert.equal(safeFolderName('Bug or feature?'), 'bug-or-feature');
  assert.equal(safeFolderName('  Été / Résumé  '), 'ete-resume');
  assert.equal(safeFolderName('../../etc/passwd'), 'etc-passwd');
  assert.equal(safeFolderName('???'), 'task');
  assert.equal(safeFolderName('CON'), 'con-task');
  assert.equal(safeFolderName('a'.repeat(200)).length, 64);
  assert.ok(isSafeFolderName('bug-or-feature'));
  assert.ok(!isSafeFolderName('..'));
  assert.ok(!isSafeFolderName('a/b'));
  assert.equal(uniqueFolderName('x', new Set(['x', 'x-2'])), 'x-3');
});

test('task.json validation names the bad field', () => {
  const good = newTaskConfig({ name: 'Sentiment', kind: 'classify', instruction: 'Classify.', labels: ['pos', 'neg'] });
  assert.equal(validateTaskConfig(JSON.parse(JSON.stringify(good))).name, 'Sentiment');
  const bad = (patch: Record<string, unknown>) => () => validateTaskConfig({ ...good, ...patch });
  assert.throws(bad({ kind: 'translate' }), /kind: expected "classify" \| "extract" \| "generate"/);
  assert.throws(bad({ labels: ['only-one'] }), /labels: a classify task needs at least 2 labels/);
  assert.throws(bad({ labels: ['a', 'a'] }), /labels\[1\]: "a" appears twice/);
  assert.throws(bad({ hyperparameters: { ...good.hyperparameters, epochs: 0 } }), /hyperparameters\.epochs: expected an integer.*got 0/);
  assert.throws(bad({ hyperparameters: { ...good.hyperparameters, targets: ['q', 'lm_head'] } }), /hyperparameters\.targets\[1\]/);
  assert.throws(bad({ extra: 1 }), /unknown field "extra"/);
  assert.throws(bad({ name: '' }), /name: expected a string of length 1\.\.80/);
  assert.throws(() => validateTaskConfig({ ...good, kind: 'generate' }), /only a classify task has labels/);
  assert.throws(() => validateTaskConfig('nope'), /expected an object/);
});

test('hyperparameters map onto the gemma-tune train flags', () => {
  const args = hyperparametersToCliArgs(DEFAULT_HYPERPARAMETERS);
  assert.deepEqual(args.slice(0, 4), ['--epochs', '3', '--lr', '0.0002']);
  assert.equal(args[args.indexOf('--targets') + 1], 'q,k,v,o,gate,up,down');
  assert.deepEqual(parseList('a, b\nc,,a'), ['a', 'b', 'c']);
});

test('create writes task.json and an examples.jsonl in TRL conversational format', async () => {
  const { ws, store } = await newStore();
  const task = await store.create({ name: 'Bug or feature?', kind: 'classify', instruction: 'Classify the issue.', labels: ['bug', 'feature'] });
  assert.equal(task.id, 'bug-or-feature');
  assert.equal(task.dir, path.join(ws, '.gemma', 'tasks', 'bug-or-feature'));
  const again = await store.create({ name: 'Bug or feature', kind: 'generate', instruction: '' });
  assert.equal(again.id, 'bug-or-feature-2');

  const [a, b] = await store.addExamples(task.id, [{ input: 'It crashes on start' }, { input: 'Add dark mode', output: 'feature', heldOut: true }]);
  assert.match(a.id, /^ex-[0-9a-f]{8}$/);
  await store.updateExample(task.id, a.id, { output: 'bug' });
  const onDisk = await lines(path.join(task.dir, 'examples.jsonl'));
  assert.deepEqual(onDisk[0], {
    messages: [
      { role: 'user', content: 'Classify the issue.\nLabels: bug, feature\nAnswer with one label only.\n\nInput:\nIt crashes on start' },
      { role: 'assistant', content: 'bug' },
    ],
    id: a.id,
    input: 'It crashes on start',
    heldOut: false,
  });
  assert.equal(onDisk[1].id, b.id);
  assert.equal(onDisk[1].heldOut, true);

  const { examples, problems } = await store.examples(task.id);
  assert.deepEqual(problems, []);
  assert.deepEqual(examples.map((e) => [e.input, e.output, e.heldOut]), [
    ['It crashes on start', 'bug', false],
    ['Add dark mode', 'feature', true],
  ]);
  const split = splitExamples(examples);
  assert.equal(split.train.length, 1);
  assert.equal(split.validation.length, 1);

  assert.equal(await store.removeExample(task.id, b.id), true);
  assert.equal(await store.removeExample(task.id, b.id), false);
  assert.equal((await store.examples(task.id)).examples.length, 1);
  await assert.rejects(store.updateExample(task.id, 'ex-missing', { output: 'x' }), /no example "ex-missing"/);
  await assert.rejects(store.updateExample(task.id, a.id, { input: 'x'.repeat(100_001) }), /input: expected a string of at most 100000/);
});

test('saving the config re-renders every user message', async () => {
  const { store } = await newStore();
  const task = await store.create({ name: 't', kind: 'classify', instruction: 'Old.', labels: ['a', 'b'] });
  await store.addExamples(task.id, [{ input: 'x', output: 'a' }]);
  await store.saveConfig(task.id, { ...task.config, instruction: 'New.', labels: ['a', 'b', 'c'] });
  const [line] = await lines(path.join(task.dir, 'examples.jsonl'));
  assert.equal((line.messages as { content: string }[])[0].content, 'New.\nLabels: a, b, c\nAnswer with one label only.\n\nInput:\nx');
  await assert.rejects(store.saveConfig(task.id, { ...task.config, labels: [] }), /task\.json: labels: a classify task needs at least 2/);
});

test('a damaged line is reported with file and line, the rest is kept, and the original is backed up before a rewrite', async () => {
  const backups: string[] = [];
  const { store } = await newStore((_file, backup) => backups.push(backup));
  const task = await store.create({ name: 'Tone', kind: 'generate', instruction: 'Make it polite.' });
  const file = path.join(task.dir, 'examples.jsonl');
  const damaged = [
    '{"messages":[{"role":"user","content":"u1"},{"role":"assistant","content":"a1"}],"id":"ex-1","input":"one","heldOut":false}',
    '{"messages":[{"role":"user","content":"u2"},{"role":"assist',
    '{"messages":"oops","id":"ex-3"}',
    '{"messages":[{"role":"user","content":"u4"},{"role":"assistant","content":"a4"}],"id":"ex-1"}',
    '{"prompt":"five","completion":"FIVE","id":"ex-5"}',
    '{"messages":[{"role":"user","content":"raw six"},{"role":"assistant","content":"a6"}]}',
    '',
  ].join('\n');
  await fs.writeFile(file, damaged);
  const { examples, problems } = await store.examples(task.id);
  assert.deepEqual(examples.map((e) => e.input), ['one', 'five', 'raw six']);
  assert.deepEqual(problems.map((p) => [p.file, p.line]), [[file, 2], [file, 3], [file, 4]]);
  assert.match(problems[0].message, /not valid JSON/);
  assert.match(problems[1].message, /messages: expected an array/);
  assert.match(problems[2].message, /id "ex-1" appears on an earlier line/);

  await store.addExamples(task.id, [{ input: 'seven' }]);
  assert.equal(backups.length, 1);
  assert.equal(await fs.readFile(backups[0], 'utf8'), damaged, 'the backup holds the damaged file byte for byte');
  const after = await store.examples(task.id);
  assert.deepEqual(after.problems, []);
  assert.deepEqual(after.examples.map((e) => e.input), ['one', 'five', 'raw six', 'seven']);
  await store.addExamples(task.id, [{ input: 'eight' }]);
  assert.equal(backups.length, 1, 'a clean file is not backed up again');
});

test('a broken task.json is refused with the file named, and listed as broken', async () => {
  const { store } = await newStore();
  await store.create({ name: 'Good', kind: 'extract', instruction: 'Get the date.', fields: ['date'] });
  const broken = await store.create({ name: 'Broken', kind: 'generate', instruction: '' });
  const brokenFile = path.join(broken.dir, 'task.json');
  await fs.writeFile(brokenFile, '{"version":1,"name":"Broken",');
  await assert.rejects(store.get(broken.id), (err: unknown) => err instanceof TaskFileError && err.file === brokenFile && /not valid JSON/.test(err.message));
  await assert.rejects(store.addExamples(broken.id, [{ input: 'x' }]), TaskFileError);
  assert.equal(await fs.readFile(brokenFile, 'utf8'), '{"version":1,"name":"Broken",', 'never overwritten');
  const entries = await store.list();
  assert.deepEqual(entries.map((e) => [e.id, 'task' in e]), [['broken', false], ['good', true]]);
  assert.equal((entries[1] as { task: { config: { fields?: string[] } } }).task.config.fields?.[0], 'date');
  assert.throws(() => store.taskDir('../escape'), /not a task folder name/);
});

test('concurrent edits to one task are serialised and none is lost', async () => {
  const { store } = await newStore();
  const task = await store.create({ name: 'Many', kind: 'generate', instruction: '' });
  const [ex] = await store.addExamples(task.id, [{ input: 'base' }]);
  await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => store.addExamples(task.id, [{ input: `n${i}` }])),
    store.updateExample(task.id, ex.id, { output: 'edited', heldOut: true }),
  ]);
  const { examples } = await store.examples(task.id);
  assert.equal(examples.length, 21);
  assert.deepEqual(examples[0], { ...ex, output: 'edited', heldOut: true });
});

test('rename moves the folder; remove deletes it; metrics append and survive damage', async () => {
  const { store } = await newStore();
  const task = await store.create({ name: 'Old name', kind: 'generate', instruction: '' });
  await store.addExamples(task.id, [{ input: 'keep me' }]);
  const renamed = await store.rename(task.id, 'New name');
  assert.equal(renamed.id, 'new-name');
  assert.equal(renamed.config.name, 'New name');
  assert.equal((await store.examples('new-name')).examples[0].input, 'keep me');
  await assert.rejects(store.get('old-name'), /no such task/);

  await store.appendMetrics('new-name', [{ version: 2, type: 'step', step: 1, epoch: 0.25, loss: 2.5 }]);
  await fs.appendFile(path.join(renamed.dir, 'metrics.jsonl'), '{"type":"st');
  await store.appendMetrics('new-name', [{ version: 2, type: 'eval', step: 1, valLoss: 2.7 }]);
  const m = await store.metrics('new-name');
  assert.deepEqual(m.records.map((r) => r.value.type), ['step', 'eval']);
  assert.deepEqual(m.problems, []);
  await assert.rejects(store.appendMetrics('new-name', [{ nope: 1 } as never]), /type: expected a non-empty string/);

  await store.remove('new-name');
  assert.deepEqual(await store.list(), []);
});

test('example lines from other tools', () => {
  assert.throws(() => exampleFromLine([1]), /expected a JSON object/);
  assert.throws(() => exampleFromLine({ text: 'x' }), /expected "messages"/);
  assert.throws(() => exampleFromLine({ messages: [{ role: 'assistant', content: 'a' }] }), /no user message/);
  assert.throws(() => exampleFromLine({ messages: [], id: '../x' }), /id: expected 1-64 letters/);
  assert.throws(() => exampleFromLine({ prompt: 'p', heldOut: 'yes' }), /heldOut: expected true or false/);
  const ex = exampleFromLine({ messages: [{ role: 'user', content: 'u' }] });
  assert.equal(ex.output, '');
  const read = parseJsonl('{"a":1}\r\n\r\n[\n', 'f.jsonl', (v) => v);
  assert.equal(read.records.length, 1);
  assert.deepEqual(read.problems.map((p) => p.line), [3]);
});
