// What the host sends the panel's page (issue 11, item 8): a task past the page's limits (more than
// 1000 examples, 1001 unreadable lines) is sent as far as the page shows it, with what was left out
// counted; a state the page would refuse becomes a message naming the problem and what to do; a task
// whose files cannot be read says so. Also where the panel opens (issue 12, item 8).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { panelColumn } from '../../src/panel/panelColumn';
import { buildPanelState, type PanelStateInput, unreadableTask } from '../../src/panel/panelState';
import { PANEL_MAX_EXAMPLES, PANEL_MAX_PROBLEMS, parseHostMessage } from '../../src/protocol/webview';
import type { Example } from '../../src/store/examples';
import { newTaskConfig } from '../../src/store/task';
import { TaskFileError } from '../../src/store/taskStore';

const task = { id: 'triage', dir: '/ws/.gemma/tasks/triage', config: newTaskConfig({ name: 'Triage', kind: 'classify', instruction: 'Classify.', labels: ['bug', 'feature'] }) };

function input(examples: number, problems: number): PanelStateInput {
  const ex: Example[] = Array.from({ length: examples }, (_, i) => ({ id: `ex-${i}`, input: `ticket ${i}`, output: i % 2 ? 'bug' : '', heldOut: false }));
  return {
    task, hasAdapter: false, examples: ex,
    problems: Array.from({ length: problems }, (_, i) => ({ file: `${task.dir}/examples.jsonl`, line: i + 1, message: 'not valid JSON' })),
    capabilities: { train: true, suggest: true }, training: null,
    suggestions: ex.map((e) => ({ id: e.id, output: 'bug', probability: 0.5 })), resumable: null,
  };
}

test('a task within the limits is sent whole, and the page accepts it', () => {
  const built = buildPanelState(input(12, 2));
  assert.ok('state' in built);
  assert.equal(built.state.examples.length, 12);
  assert.deepEqual(built.state.problems, ['examples.jsonl:1: not valid JSON', 'examples.jsonl:2: not valid JSON'], 'named within the task\'s folder');
  assert.equal(built.state.omitted, undefined);
  // What the page runs every state through.
  assert.doesNotThrow(() => parseHostMessage({ type: 'state', state: built.state, restore: { folder: '/ws', taskId: 'triage' } }));
});

test('more than 1000 examples and 1001 unreadable lines: the first ones are shown, the rest counted', () => {
  const built = buildPanelState(input(1234, 1001));
  assert.ok('state' in built, 'not refused');
  assert.equal(built.state.examples.length, PANEL_MAX_EXAMPLES);
  assert.equal(built.state.problems.length, PANEL_MAX_PROBLEMS);
  assert.deepEqual(built.state.omitted, { examples: 1234 - PANEL_MAX_EXAMPLES, problems: 1001 - PANEL_MAX_PROBLEMS });
  assert.equal(built.state.suggestions.length, PANEL_MAX_EXAMPLES, 'suggestions only for the examples shown');
  assert.doesNotThrow(() => parseHostMessage({ type: 'state', state: built.state, restore: { folder: '/ws', taskId: 'triage' } }));
});

test('a state the page would refuse becomes a message naming the problem and what to do', () => {
  const bad = input(3, 0);
  bad.training = { status: 'running', totalSteps: 10, step: 1, epoch: 0.1, etaSeconds: Number.NaN, trainLoss: [], valLoss: [], bestStep: null, comparison: [] };
  const built = buildPanelState(bad);
  assert.ok('unavailable' in built);
  assert.match(built.unavailable.problem, /The panel cannot show the task "Triage": state\.training\.etaSeconds: expected a number >= 0, got NaN/);
  assert.match(built.unavailable.remedy, /\/ws\/\.gemma\/tasks\/triage.*Try again/);
  assert.doesNotThrow(() => parseHostMessage({ type: 'unavailable', ...built.unavailable }));
});

test('a task whose task.json is damaged is named with the file and the way back', () => {
  const u = unreadableTask('triage', new TaskFileError('/ws/.gemma/tasks/triage/task.json', 'not valid JSON (Unexpected end of JSON input)'), '/ws');
  assert.equal(u.problem, 'The task "triage" cannot be read: .gemma/tasks/triage/task.json: not valid JSON (Unexpected end of JSON input)');
  assert.match(u.remedy, /git has its last good version/);
});

test('the panel opens in a column beside the editor that is already there before adding one', () => {
  assert.equal(panelColumn(1, 1), 'new', 'one column: a new one to its right');
  assert.equal(panelColumn(1, 2), 2, 'left editor: the right column');
  assert.equal(panelColumn(2, 2), 1, 'right editor: the left column, not a third one');
  assert.equal(panelColumn(2, 3), 3);
  assert.equal(panelColumn(undefined, 2), 'new');
});
