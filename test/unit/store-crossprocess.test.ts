// The task store shared by several processes, as with two VS Code windows on one folder and the CLI:
// real child processes adding examples at once (none lost), a hand edit landing in the middle of an edit
// (kept: the edit is made again on it), a training run in one process refusing training, renaming and
// deleting in another, and locks of a SIGKILLed process freed at once.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { TaskBusyError, TaskStore } from '../../src/store/taskStore';
import { buildChild, inputsOnDisk, kill, namesIn, startChild } from './store-helpers';
import { tempDir } from './temp-helpers';

const root = tempDir('store-xproc-');
let child: string;
before(async () => {
  child = await buildChild('store-crossprocess');
});

async function newTask(name = 'Bug or feature') {
  const ws = fs.mkdtempSync(path.join(root, 'ws-'));
  const store = TaskStore.forWorkspace(ws, { who: 'the test' });
  const task = await store.create({ name, kind: 'classify', instruction: 'Bug or feature?', labels: ['bug', 'feature'] });
  return { store, task };
}

test('two processes adding 50 examples each to one task keep all 100', async () => {
  const { store, task } = await newTask();
  const a = startChild(child, ['add', store.root, task.id, '50', 'a']);
  const b = startChild(child, ['add', store.root, task.id, '50', 'b']);
  assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0], a.stderr() + b.stderr());
  const expected = [...a.lines, ...b.lines].map((l) => l.replace(/^added /, '')).sort();
  assert.equal(expected.length, 100);
  const { examples, problems } = await store.examples(task.id);
  assert.deepEqual(problems, []);
  assert.deepEqual(examples.map((e) => e.input).sort(), expected);
  assert.equal(new Set(examples.map((e) => e.id)).size, 100, 'every example has its own id');
  assert.deepEqual(namesIn(task.dir), ['examples.jsonl', 'task.json'], 'no lock or temporary file left');
});

test('a hand edit landing while the store writes is kept: the edit is made again on the new content', async () => {
  const conflicts: string[] = [];
  const ws = fs.mkdtempSync(path.join(root, 'ws-'));
  const store = TaskStore.forWorkspace(ws, { onConflict: (f) => conflicts.push(f) });
  const task = await store.create({ name: 'Big', kind: 'generate', instruction: '' });
  // A large file, so that writing it takes long enough to edit it by hand in the middle.
  await store.addExamples(task.id, Array.from({ length: 300 }, (_, i) => ({ input: `${i} ${'x'.repeat(60_000)}` })));
  const file = path.join(task.dir, 'examples.jsonl');
  const handLine = JSON.stringify({ messages: [{ role: 'user', content: 'typed by hand' }, { role: 'assistant', content: 'kept' }], id: 'ex-byhand', input: 'typed by hand', heldOut: false });

  const adding = store.addExamples(task.id, [{ input: 'added by the panel' }]);
  // The store has read the file once its temporary file appears: edit it by hand now, in place.
  const t0 = Date.now();
  while (!namesIn(task.dir).some((n) => n.endsWith('.gemma-tmp'))) {
    assert.ok(Date.now() - t0 < 20_000, 'the store never started writing');
    await new Promise((r) => setImmediate(r));
  }
  fs.appendFileSync(file, handLine + '\n');
  await adding;
  assert.deepEqual(conflicts, [file], 'the change on disk was noticed');
  const inputs = inputsOnDisk(task.dir);
  assert.equal(inputs.length, 302);
  assert.ok(inputs.includes('typed by hand'), 'the hand edit survived');
  assert.equal(inputs.at(-1), 'added by the panel');

  // Between two edits: the next edit starts from what is on disk, and changedOnDisk tells a panel to reload.
  assert.equal(await store.changedOnDisk(task.id), false, 'the store\'s own write is not a change');
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  fs.writeFileSync(file, lines.filter((l) => !l.includes('"input":"0 ')).join('\n') + '\n');
  assert.equal(await store.changedOnDisk(task.id), true);
  await store.addExamples(task.id, [{ input: 'after the hand edit' }]);
  const after = inputsOnDisk(task.dir);
  assert.equal(after.length, 302);
  assert.ok(!after.some((i) => i.startsWith('0 ')), 'the example deleted by hand stays deleted');
  assert.ok(after.includes('typed by hand') && after.includes('after the hand edit'));
});

test('the store\'s own edits are never reported as changed on disk, even when asked or read in the middle of one', async () => {
  const { store, task } = await newTask();
  // Big enough that each write takes a while: a panel's check can land between its rename and its stamp.
  const [ex] = await store.addExamples(task.id, Array.from({ length: 40 }, (_, i) => ({ input: `${i} ${'x'.repeat(50_000)}` })));
  let editing = true;
  const seen: boolean[] = [];
  const polling = (async () => {
    while (editing) {
      // A panel reads the task while the user edits it (its state, suggestions): reads overlapping an edit too.
      await store.shown(task.id);
      await store.examples(task.id);
      seen.push(await store.changedOnDisk(task.id));
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < 20; i++) await store.updateExample(task.id, ex.id, { output: i % 2 ? 'bug' : 'feature' });
  editing = false;
  await polling;
  assert.ok(seen.length >= 20, `checked ${seen.length} times`);
  assert.equal(seen.filter(Boolean).length, 0, 'a check during an edit of this store saw its own write as a change');
});

test('a change on disk stays reported until the panel has shown it, whatever else in the window read it first', async () => {
  const { store, task } = await newTask();
  await store.shown(task.id);
  assert.equal(await store.changedOnDisk(task.id), false);
  const file = path.join(task.dir, 'task.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), instruction: 'Edited by hand.' }, null, 2));
  // The code actions' list of tasks, a run's or the suggestions' reads: none of them is what the panel shows.
  await store.list();
  assert.equal((await store.get(task.id)).config.instruction, 'Edited by hand.');
  await store.examples(task.id);
  assert.equal(await store.changedOnDisk(task.id), true, 'a read that showed nothing hid the change from the panel');
  await store.shown(task.id);
  assert.equal(await store.changedOnDisk(task.id), false);
});

test('a hand edit of task.json is kept by the panel\'s next change of settings, which applies to what is on disk', async () => {
  const { store, task } = await newTask();
  await store.addExamples(task.id, [{ input: 'It crashes', output: 'bug' }]);
  const file = path.join(task.dir, 'task.json');
  const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify({ ...onDisk, instruction: 'Edited by hand.' }, null, 2));
  assert.equal(await store.changedOnDisk(task.id), true);
  const saved = await store.updateConfig(task.id, (c) => ({ ...c, hyperparameters: { ...c.hyperparameters, epochs: 7 } }));
  assert.equal(saved.config.instruction, 'Edited by hand.');
  assert.equal(saved.config.hyperparameters.epochs, 7);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).instruction, 'Edited by hand.');
  // examples.jsonl's prompts follow the new instruction.
  assert.match(fs.readFileSync(path.join(task.dir, 'examples.jsonl'), 'utf8'), /"content":"Edited by hand\.\\nLabels: bug, feature/);
  await assert.rejects(store.updateConfig(task.id, (c) => ({ ...c, labels: [] })), /task\.json: labels: a classify task needs at least 2/);
});

test('training in one process refuses training, renaming and deleting in another, naming it; its SIGKILL frees the task', async () => {
  const { store, task } = await newTask();
  const holder = startChild(child, ['hold-training', store.root, task.id]);
  await holder.waitFor(/^locked$/);
  const named = (action: RegExp) => (e: unknown) =>
    e instanceof TaskBusyError && action.test(e.message) && e.message.includes(`store-child hold-training (process ${holder.proc.pid}, since `);
  await assert.rejects(store.lockTraining(task.id), named(/^Task "bug-or-feature" is being trained by /));
  await assert.rejects(store.rename(task.id, 'Renamed'), named(/cannot be renamed while/));
  await assert.rejects(store.remove(task.id), named(/cannot be deleted while/));
  assert.equal((await store.trainingHolder(task.id))?.owner?.pid, holder.proc.pid);
  // Editing examples goes on meanwhile: the panel stays usable while another window trains.
  await store.addExamples(task.id, [{ input: 'labeled while training' }]);

  await kill(holder);
  assert.equal(await store.trainingHolder(task.id), null, 'a dead holder holds nothing');
  const lock = await store.lockTraining(task.id);
  await lock.release();
  assert.deepEqual(namesIn(task.dir), ['examples.jsonl', 'task.json']);
  const renamed = await store.rename(task.id, 'Renamed');
  assert.equal(renamed.id, 'renamed');
  assert.deepEqual(namesIn(renamed.dir), ['examples.jsonl', 'task.json'], 'the locks moved with the folder and were released there');
  await store.remove(renamed.id);
  assert.deepEqual(await store.list(), []);
});

test('an edit is not held up by the write lock of a process that was SIGKILLed holding it', async () => {
  const { store, task } = await newTask();
  const holder = startChild(child, ['hold-lock', path.join(task.dir, '.write.lock'), 'a killed window']);
  await holder.waitFor(/^locked$/);
  // Leftovers of a write the killed process had started.
  fs.writeFileSync(path.join(task.dir, `.examples.jsonl.${holder.proc.pid}.0123abcd.gemma-tmp`), 'half a line');
  await kill(holder);
  const t0 = Date.now();
  await store.addExamples(task.id, [{ input: 'after the crash' }]);
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  assert.deepEqual(inputsOnDisk(task.dir), ['after the crash']);
  assert.deepEqual(namesIn(task.dir), ['examples.jsonl', 'task.json'], 'the killed process\'s temporary file was cleaned up');
});
