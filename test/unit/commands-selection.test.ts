// "Fine-tune on selection" with a selection of several lines (issue 12, item 7): one example per
// non-blank line or the whole selection as one, and the task remembering the choice in task.json.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { selectionExamples, selectionLines, spansLines } from '../../src/commands/selectionExamples';
import { newTaskConfig, validateTaskConfig } from '../../src/store/task';
import { TaskStore } from '../../src/store/taskStore';
import { tempDir } from './temp-helpers';

const tickets = 'The app crashes on save.\r\n\n  Please add dark mode.  \nHow do I export?\n';

test('a selection of several lines makes one example per non-blank line, or one for the whole', () => {
  assert.deepEqual(selectionLines(tickets), ['The app crashes on save.', 'Please add dark mode.', 'How do I export?']);
  assert.equal(spansLines([tickets]), true);
  assert.equal(spansLines(['one line', '  another  \n\n']), false, 'one non-blank line each: nothing to ask');
  assert.deepEqual(selectionExamples([tickets], 'lines'), ['The app crashes on save.', 'Please add dark mode.', 'How do I export?']);
  assert.deepEqual(selectionExamples([tickets], 'whole'), [tickets]);
  // With multi-cursor, each selection is split (or kept) the same way, in order.
  assert.deepEqual(selectionExamples(['a\nb', 'c'], 'lines'), ['a', 'b', 'c']);
  assert.deepEqual(selectionExamples(['a\nb', 'c'], 'whole'), ['a\nb', 'c']);
});

test('the task remembers the choice in task.json; older files without it still load', async () => {
  const ws = await fs.mkdtemp(path.join(tempDir('gemma-selection-'), 'ws-'));
  const store = TaskStore.forWorkspace(ws);
  const task = await store.create({ name: 'Triage', kind: 'classify', instruction: 'Classify.', labels: ['bug', 'feature'] });
  assert.equal(task.config.selection, undefined, 'asked the first time');
  await store.saveConfig(task.id, { ...task.config, selection: 'lines' });
  assert.equal((await store.get(task.id)).config.selection, 'lines');
  const onDisk = JSON.parse(await fs.readFile(path.join(task.dir, 'task.json'), 'utf8')) as { selection?: string };
  assert.equal(onDisk.selection, 'lines');
  const good = newTaskConfig({ name: 'T', kind: 'generate', instruction: 'Rewrite.' });
  assert.throws(() => validateTaskConfig({ ...good, selection: 'paragraphs' }), /selection: expected "lines" \| "whole"/);
});
