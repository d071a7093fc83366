// `gemma-tune train-task` (the built CLI, spawned) on a task folder while other processes use the same
// task: a run trains and promotes as the panel does and records metrics the panel can draw; Ctrl-C
// keeps a resumable run; a task another process trains is refused naming it; and the kill test of
// issue 11: the training process SIGKILLed at random moments, again and again, while another process
// adds examples. After every kill the adapter on disk loads and is finite (and once the task has one it
// never loses it), and at the end every example the adder acknowledged is there.
// GEMMA_TUNE_KILLS sets the number of kills (default 20).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomHf } from '../../src/engine/model/randomModel';
import type { TrainingView } from '../../src/protocol/webview';
import { METRICS_VERSION, parseMetricRecord } from '../../src/store/metricsLog';
import { trainingViewOf } from '../../src/protocol/trainingRecords';
import { findInterruptedRun, stagingDir } from '../../src/store/adapterStage';
import { DEFAULT_HYPERPARAMETERS } from '../../src/store/task';
import { TaskStore } from '../../src/store/taskStore';
import { buildChild, kill, loadFiniteAdapter, namesIn, startChild } from './store-helpers';
import { tempDir } from './temp-helpers';
import { buildBundle } from './worker-helpers';

const root = tempDir('store-killtrain-');
const model = path.join(root, 'model');
let cli: string;
let child: string;
before(async () => {
  [cli, child] = await Promise.all([buildBundle('store-killtrain', 'src/cli/main.ts', 'cli.js'), buildChild('store-killtrain')]);
  writeRandomHf(model, GEMMA3_TINY, { seed: 3, dtype: 'f32' });
});

/** Steps of a whole run of newTask's task: 8 training examples in batches of 2, 3 epochs. */
const TOTAL_STEPS = 12;
const trainArgs = (dir: string, ...more: string[]) => [cli, 'train-task', '--task', dir, '--model', model, '--precision', 'f32', '--threads', '1', '--json', ...more];

/** A classify task with ten labeled examples (two held out) and settings for a run of a few seconds. */
async function newTask() {
  const store = TaskStore.forWorkspace(fs.mkdtempSync(path.join(root, 'ws-')), { who: 'the test' });
  const task = await store.create({ name: 'Bug or feature', kind: 'classify', instruction: 'Bug or feature?', labels: ['bug', 'feature'] });
  await store.saveConfig(task.id, { ...task.config, hyperparameters: { ...DEFAULT_HYPERPARAMETERS, epochs: 3, minSteps: 0, rank: 2, alpha: 4, targets: ['q', 'v'], batchSize: 2, learningRate: 1e-3 } });
  await store.addExamples(task.id, Array.from({ length: 10 }, (_, i) => ({ input: `Issue number ${i}: ${i % 2 ? 'it crashes' : 'please add this'}`, output: i % 2 ? 'bug' : 'feature', heldOut: i < 2 })));
  return { store, id: task.id, dir: task.dir, adapterDir: store.adapterDir(task.id) };
}

/** The chart the panel draws from metrics.jsonl (as TrainingPanel.lastRun reads it), every line a record of the current version. */
async function panelView(store: TaskStore, id: string): Promise<TrainingView | null> {
  const lines = (await store.metrics(id)).records.map((r) => r.value);
  for (const line of lines) assert.equal(parseMetricRecord(line).version, METRICS_VERSION);
  return trainingViewOf(lines);
}

test('train-task trains a task folder as the panel does: staged, promoted, recorded; Ctrl-C keeps a run to resume', async () => {
  const { store, id, dir, adapterDir } = await newTask();
  const r = spawnSync(process.execPath, trainArgs(dir), { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual([events[0].type, events[0].trainExamples, events[0].valExamples, events[0].totalSteps], ['start', 8, 2, TOTAL_STEPS]);
  assert.equal(events.at(-1).type, 'done');
  assert.match(r.stderr, new RegExp(`Trained ${TOTAL_STEPS} steps; the adapter from step \\d+ is in ${adapterDir.replace(/[/\\.]/g, '\\$&')}\\.`));
  assert.ok(loadFiniteAdapter(adapterDir).length > 0);
  assert.deepEqual(namesIn(dir), ['adapter', 'examples.jsonl', 'metrics.jsonl', 'task.json'], 'no staging folder or lock left');
  const view = await panelView(store, id);
  assert.equal(view?.status, 'done');
  assert.equal(view?.trainLoss.length, TOTAL_STEPS);
  assert.ok((view?.valLoss.length ?? 0) >= 1);

  // Ctrl-C after the first step: cancelled, the best adapter so far promoted, the run resumable.
  const run = startChild(cli, trainArgs(dir).slice(1));
  await run.waitFor(/"type":"step","step":1,/);
  run.proc.kill('SIGINT');
  assert.equal(await run.exited, 0, run.stderr());
  assert.match(run.stderr(), /Cancelled at step \d+; .* The run can be resumed \(--resume\)\./);
  const interrupted = await findInterruptedRun(adapterDir);
  assert.ok(interrupted && interrupted.step > 0 && interrupted.step < TOTAL_STEPS, JSON.stringify(interrupted));
  const resumed = spawnSync(process.execPath, trainArgs(dir, '--resume'), { encoding: 'utf8', timeout: 300_000 });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.equal(JSON.parse(resumed.stdout.split('\n')[0]).resumedFromStep, interrupted.step);
  assert.equal(fs.existsSync(stagingDir(adapterDir)), false);
  assert.equal((await panelView(store, id))?.trainLoss.length, TOTAL_STEPS, 'the resumed run\'s curve goes on from the cancelled one');
});

test('train-task, and train --out into a task folder, refuse a task another process is training, in one line naming it', async () => {
  const { store, dir } = await newTask();
  const holder = startChild(child, ['hold-training', store.root, path.basename(dir)]);
  await holder.waitFor(/^locked$/);
  const r = spawnSync(process.execPath, trainArgs(dir), { encoding: 'utf8', timeout: 60_000 });
  const data = path.join(root, 'data.jsonl');
  fs.writeFileSync(data, JSON.stringify({ messages: [{ role: 'user', content: 'Is 2 even?' }, { role: 'assistant', content: 'yes' }] }) + '\n');
  const raw = spawnSync(process.execPath, [cli, 'train', '--model', model, '--data', data, '--out', path.join(dir, 'adapter'), '--precision', 'f32', '--threads', '1'], { encoding: 'utf8', timeout: 60_000 });
  assert.deepEqual(namesIn(dir), ['.training.lock', 'examples.jsonl', 'task.json'], 'nothing touched: the holder\'s lock stays');
  await kill(holder);
  const named = `store-child hold-training \\(process ${holder.proc.pid}, since [^)]+\\)\\. Wait for that run to end \\(or stop it\\), then train again\\.\\n$`;
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^gemma-tune train-task: Task "bug-or-feature" is being trained by ${named}`));
  assert.equal(raw.status, 1);
  assert.match(raw.stderr, new RegExp(`^gemma-tune train: Task "bug-or-feature" is being trained by ${named}`));
});

test('the training process SIGKILLed at random moments while another adds examples: nothing lost, the adapter always loads and is finite', async () => {
  const KILLS = Number(process.env.GEMMA_TUNE_KILLS ?? 20);
  const { store, id, dir, adapterDir } = await newTask();
  // A whole run first: how long one takes sets the range of the kill times, and the task has an adapter.
  const t0 = Date.now();
  const first = spawnSync(process.execPath, trainArgs(dir), { encoding: 'utf8', timeout: 300_000 });
  assert.equal(first.status, 0, first.stderr);
  const runMs = Date.now() - t0;
  loadFiniteAdapter(adapterDir);

  const adder = startChild(child, ['add', store.root, id, '1000000', 'added', '25', 'unlabeled']);
  const phases: Record<string, number> = {};
  let resumes = 0;
  let checks = 0;
  for (let k = 0; k < KILLS; k++) {
    const resume = k % 2 === 1 && (await findInterruptedRun(adapterDir)) !== null;
    resumes += resume ? 1 : 0;
    const run = startChild(cli, trainArgs(dir, ...(resume ? ['--resume'] : [])).slice(1));
    // A random moment of a random part of the run: loading, a training step, or the end (promotion).
    const part = k % 3;
    try {
      if (part === 1) await run.waitFor(new RegExp(`"type":"step","step":${1 + Math.floor(Math.random() * (TOTAL_STEPS - 1))},`));
      if (part === 2) await run.waitFor(/"type":"done"/);
    } catch {
      // it ended (or resumed past that step) first
    }
    await new Promise((r) => setTimeout(r, Math.random() * (part === 0 ? runMs : 60)));
    const ended = await Promise.race([run.exited.then(() => true), Promise.resolve(false)]);
    await kill(run);
    const last = run.lines.length ? JSON.parse(run.lines.at(-1)!) : null;
    const phase = ended ? 'finished before the kill' : !last ? 'loading' : last.type === 'done' ? 'after the last step (promoting)' : `training (${last.type})`;
    phases[phase] = (phases[phase] ?? 0) + 1;
    assert.ok(!ended || /Trained|Cancelled/.test(run.stderr()), `run ${k} failed: ${run.stderr()}`);

    // The next start, as the code actions see it: the task has its adapter, whole and finite.
    assert.equal(await store.hasAdapter(id), true, `kill ${k} (${phase}): the task lost its adapter`);
    loadFiniteAdapter(adapterDir);
    checks++;
    assert.deepEqual(namesIn(dir).filter((n) => n === 'adapter.old' || n === 'adapter.new'), []);
  }
  await kill(adder);
  const acked = adder.lines.map((l) => l.replace(/^added /, ''));
  const { examples, problems } = await store.examples(id);
  assert.deepEqual(problems, []);
  const stored = new Set(examples.map((e) => e.input));
  const lost = acked.filter((a) => !stored.has(a));
  assert.deepEqual(lost, [], 'examples acknowledged and then lost');
  assert.equal(new Set(examples.map((e) => e.id)).size, examples.length);
  // Whatever the kills left (locks, temporary files) is cleaned by the next edit and the next run.
  await store.addExamples(id, [{ input: 'the last one' }]);
  const last = spawnSync(process.execPath, trainArgs(dir), { encoding: 'utf8', timeout: 300_000 });
  assert.equal(last.status, 0, last.stderr);
  loadFiniteAdapter(adapterDir);
  assert.deepEqual(namesIn(dir), ['adapter', 'examples.jsonl', 'metrics.jsonl', 'task.json']);
  console.log(`train-task kills: ${KILLS} (${resumes} of them resumes), by phase ${JSON.stringify(phases)}; adapter loaded and finite after each (${checks} checks); ` +
    `one whole run ${runMs} ms; examples acknowledged by the adder ${acked.length}, lost ${lost.length}; examples in the task ${examples.length}`);
});
