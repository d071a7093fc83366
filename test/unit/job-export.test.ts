// export-job: a task becomes a self-contained training folder (train.py, job.json with the task's recipe,
// only the labeled examples as the extension renders them, requirements, accelerate configs, README),
// train.py compiles, and a folder holding other files is never overwritten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HYPERPARAMETER_KEYS, TRAIN_DEFAULTS } from '../../src/engine/train/defaults';
import { exportJob, JobExportError } from '../../src/job/exportJob';
import { TaskStore } from '../../src/store/taskStore';
import { exportJobCommand } from '../../src/cli/commands/exportJob';
import { tempDir } from './temp-helpers';
import { pythonWith } from './job-helpers';
import { trainScript } from '../../src/job/trainScript';
import { ADAPTER_CONFIG_FILE, ADAPTER_INFO_FILE, ADAPTER_WEIGHTS_FILE, METRICS_FILE } from '../../src/common/files';

test('train.py names the files as src/common/files.ts does', async () => {
  const script = await trainScript();
  const constant = (name: string) => new RegExp(`^${name} = "([^"]*)"$`, 'm').exec(script)?.[1];
  assert.deepEqual([constant('ADAPTER_INFO'), constant('ADAPTER_CONFIG_FILE'), constant('ADAPTER_WEIGHTS_FILE'), constant('METRICS_FILE')],
    [ADAPTER_INFO_FILE, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, METRICS_FILE]);
});

test('train.py checks every setting of the settings table (engine/train/defaults.ts), and no other', async () => {
  const need = /need = \{([^}]*)\}/.exec(await trainScript());
  assert.ok(need, 'train.py\'s list of hyperparameters');
  const keys = [...need[1].matchAll(/"(\w+)":/g)].map((m) => m[1]);
  assert.deepEqual([...keys].sort(), [...HYPERPARAMETER_KEYS].sort(), 'a setting added to the table is read (and trained with) by train.py too');
});

async function triageTask(root: string) {
  const store = new TaskStore(path.join(root, '.gemma', 'tasks'));
  const task = await store.create({ name: 'Triage', kind: 'classify', instruction: 'Classify the ticket.', labels: ['bug', 'feature'] });
  await store.addExamples(task.id, [
    { input: 'It crashes.', output: 'bug' },
    { input: 'Add dark mode.', output: 'feature', heldOut: true },
    { input: 'Not labeled yet.' },
  ]);
  return { store, task };
}

test('export writes the job folder: recipe, labeled examples, script, configs, README', async (t) => {
  const root = tempDir('job-export-', t);
  const { store, task } = await triageTask(root);
  const out = path.join(root, 'job');
  const files = await exportJob(task, (await store.examples(task.id)).examples, out, 'google/gemma-3-1b-it');
  for (const f of ['train.py', 'job.json', 'examples.jsonl', 'requirements.txt', 'README.md', 'accelerate/1gpu.yaml', 'accelerate/multi-gpu.yaml', 'accelerate/multi-node.yaml']) {
    assert.ok(fs.existsSync(path.join(out, f)), f);
    assert.ok(files.includes(f), f);
  }
  const job = JSON.parse(fs.readFileSync(path.join(out, 'job.json'), 'utf8'));
  assert.equal(job.format, 'gemma-tune-job');
  assert.equal(job.base, 'google/gemma-3-1b-it');
  assert.deepEqual({ ...job.hyperparameters }, { ...task.config.hyperparameters, patience: TRAIN_DEFAULTS.patience, minSteps: TRAIN_DEFAULTS.minSteps }, 'the task\'s hyperparameters, patience and minSteps filled in');
  assert.equal(job.maxTokens, 1024);
  const lines = fs.readFileSync(path.join(out, 'examples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2, 'the unlabeled example stays out');
  assert.deepEqual(lines.map((l) => [l.heldOut, l.messages[1].content]), [[false, 'bug'], [true, 'feature']]);
  assert.match(lines[0].messages[0].content, /^Classify the ticket\.\nLabels: bug, feature\n/, 'the user turn as the extension renders it');
  assert.match(fs.readFileSync(path.join(out, 'requirements.txt'), 'utf8'), /^transformers>=5\.0,<6$/m);
  assert.match(fs.readFileSync(path.join(out, 'accelerate/multi-gpu.yaml'), 'utf8'), /^distributed_type: MULTI_GPU$/m);
  assert.match(fs.readFileSync(path.join(out, 'README.md'), 'utf8'), /accelerate launch --config_file accelerate\/1gpu\.yaml train\.py/);
  assert.equal(fs.readFileSync(path.join(out, 'train.py'), 'utf8'), fs.readFileSync(path.resolve(__dirname, '../../src/job/train.py'), 'utf8'));
});

test('train.py compiles (python3 -m py_compile)', (t) => {
  const py = pythonWith([]);
  if (!py) return t.skip('no python3 here');
  const dir = tempDir('job-compile-', t);
  fs.copyFileSync(path.resolve(__dirname, '../../src/job/train.py'), path.join(dir, 'train.py'));
  const r = spawnSync(py, ['-m', 'py_compile', path.join(dir, 'train.py')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('export refuses a folder with other files, a task with nothing labeled; re-exports over a job', async (t) => {
  const root = tempDir('job-export-', t);
  const { store, task } = await triageTask(root);
  const { examples } = await store.examples(task.id);
  const busy = path.join(root, 'busy');
  fs.mkdirSync(busy);
  fs.writeFileSync(path.join(busy, 'notes.txt'), 'mine');
  await assert.rejects(exportJob(task, examples, busy), (e: Error) => e instanceof JobExportError && /already holds other files/.test(e.message));
  assert.deepEqual(fs.readdirSync(busy), ['notes.txt'], 'nothing written');
  await assert.rejects(exportJob(task, examples.filter((e) => e.output === ''), path.join(root, 'none')), /no labeled examples/);
  const out = path.join(root, 'job');
  await exportJob(task, examples, out);
  fs.mkdirSync(path.join(out, 'out'));
  await exportJob(task, examples, out);
  assert.ok(fs.existsSync(path.join(out, 'out')), 'an earlier job is re-exported in place, its run kept');
});

test('gemma-tune export-job writes the folder from a task folder', async (t) => {
  const root = tempDir('job-export-cli-', t);
  const { task } = await triageTask(root);
  const out = path.join(root, 'job');
  await exportJobCommand.run(['--task', task.dir, '--out', out]);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'job.json'), 'utf8')).base, 'google/gemma-3-270m-it');
});
