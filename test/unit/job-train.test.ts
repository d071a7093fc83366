// The training job's train.py against the extension's trainer, on the tiny random model:
// - its Python ports (Mulberry32, shuffle, validation split, schedule, chat template) give our values;
// - on Debian's torch with the plain-torch Gemma 3 of bench/pytorch_lora.py in place of transformers + PEFT,
//   its loop takes our steps: the same losses, validation losses and kept adapter as `gemma-tune train`, from
//   the seeded init and order, and from an --init-adapter with --no-shuffle;
// - with transformers + PEFT (test/job/hf-venv.sh), the real script: its tokens are ours, its losses ours, and
//   its adapter, imported into a task, gives PEFT's logits in our engine; two processes (torchrun) take the
//   same steps as one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomHf } from '../../src/engine/model/randomModel';
import { openWeights } from '../../src/engine/model/load';
import { createTokenizer } from '../../src/engine/model/tokenizer';
import { renderChat, type ChatMessage } from '../../src/engine/model/chatTemplate';
import { readExamples } from '../../src/engine/train/examples';
import { modelRenderer, tokenizeExample } from '../../src/engine/train/tokenize';
import { splitValidation } from '../../src/engine/train/split';
import { scheduleFactor } from '../../src/engine/train/schedule';
import { trainingPlan } from '../../src/engine/train/plan';
import { ALL_TARGETS, initLora } from '../../src/engine/train/lora';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import { Rng, shuffled } from '../../src/engine/rng';
import { exportJob } from '../../src/job/exportJob';
import { TaskStore } from '../../src/store/taskStore';
import { tempDir } from './temp-helpers';
import { hfPython, pythonWith, runPython } from './job-helpers';
import { METRICS_VERSION, parseMetricRecord } from '../../src/store/metricsLog';
import { safetensorsTensors, tensorDiffs } from './train-helpers';
import { maxAbsDiff } from './gemma-helpers';

const ROOT = path.resolve(__dirname, '../..');
const TRAIN_PY = path.join(ROOT, 'src/job/train.py');
const PLAIN = path.join(ROOT, 'test/job/plain_train.py');
const MAIN = path.join(ROOT, 'src/cli/main.ts');
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 300000 });

/** The ticket-triage example task exported as a job, the tiny model, and the examples as our tokens. */
async function setup(t: { after: (fn: () => void) => void } & Parameters<typeof tempDir>[1]) {
  const dir = tempDir('job-train-', t);
  const model = path.join(dir, 'model');
  writeRandomHf(model, GEMMA3_TINY, { seed: 3, dtype: 'f32' });
  const tasks = path.join(dir, '.gemma', 'tasks');
  fs.cpSync(path.join(ROOT, 'examples', 'ticket-triage'), path.join(tasks, 'ticket-triage'), { recursive: true });
  const store = new TaskStore(tasks);
  // 3 epochs alone (12 steps), not the 100-step floor of the defaults: the runs compared stay short.
  const task = await store.updateConfig('ticket-triage', (c) => ({ ...c, hyperparameters: { ...c.hyperparameters, minSteps: 0 } }));
  const job = path.join(dir, 'job');
  await exportJob(task, (await store.examples(task.id)).examples, job, model);
  const opened = openWeights(model, { precision: 'f32' });
  const renderer = modelRenderer(createTokenizer(opened.tokenizerSource!), opened.source.config);
  const tokens = readExamples(path.join(job, 'examples.jsonl')).map((e) => tokenizeExample(e, renderer, 1024));
  const tokensFile = path.join(dir, 'tokens.jsonl');
  fs.writeFileSync(tokensFile, tokens.map((e) => JSON.stringify({ id: e.id, input_ids: e.inputIds, labels: e.labels })).join('\n') + '\n');
  return { dir, model, job, tokens, tokensFile, store, task };
}

interface Run {
  losses: number[];
  valLosses: number[];
}

/** Step and eval losses from our trainer's --json events or train.py's log.jsonl. */
function lossesOf(lines: string[]): Run {
  const ev = lines.filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l) as { type: string; loss?: number; valLoss?: number });
  return { losses: ev.filter((e) => e.type === 'step').map((e) => e.loss!), valLosses: ev.filter((e) => e.type === 'eval').map((e) => e.valLoss!) };
}

function ours(args: string[]): Run {
  const r = cli(['train', '--precision', 'f32', '--threads', '1', '--json', '--checkpoint-every', '0', '--min-steps', '0', ...args]);
  assert.equal(r.status, 0, r.stderr);
  return lossesOf(r.stdout.split('\n'));
}

function assertSameRun(got: Run, want: Run, tol = 2e-5): void {
  assert.equal(got.losses.length, want.losses.length, 'steps');
  assert.equal(got.valLosses.length, want.valLosses.length, 'evaluations');
  got.losses.forEach((l, i) => assert.ok(Math.abs(l - want.losses[i]) <= tol * Math.abs(want.losses[i]), `step ${i + 1}: ${l} vs ${want.losses[i]}`));
  got.valLosses.forEach((l, i) => assert.ok(Math.abs(l - want.valLosses[i]) <= tol * Math.abs(want.valLosses[i]), `eval ${i + 1}: ${l} vs ${want.valLosses[i]}`));
}

test('train.py\'s ports plan, draw, shuffle, split, schedule and render as the extension does', (t) => {
  const py = pythonWith(['torch', 'numpy']);
  if (!py) return t.skip('no python3 with torch and numpy (apt-get install python3-torch)');
  const chats: ChatMessage[][] = [
    [{ role: 'user', content: '  Hi\u00a0there\u3000' }, { role: 'assistant', content: '\u001cok\n\n' }],
    [{ role: 'system', content: ' Be brief. ' }, { role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }, { role: 'assistant', content: '\ufeffd' }],
  ];
  const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(path.dirname(TRAIN_PY))})
import train as j
r = j.Rng(42); draws = [r.next() for _ in range(5)]
u = j.Rng(7).uniforms(6).tolist()
items = [{"id": f"e{i}"} for i in range(23)]
tr, va = j.split_validation(items, 0.2, 42, set())
chats = json.loads(sys.stdin.read())
plans = [j.planned_steps(n, {"epochs": 3, "minSteps": m, "batchSize": b, "gradAccum": a}) for n in (1, 13, 16, 150) for m in (0, 100) for b, a in ((4, 1), (2, 3))]
print(json.dumps({"plans": plans, "draws": draws, "uniforms": u, "shuffle": j.shuffled(list(range(10)), j.Rng(3)), "val": [e["id"] for e in va],
  "sched": [j.schedule_factor(k, 2, 10, s) for k in ("constant", "linear", "cosine") for s in range(11)],
  "chats": [j.render_chat(c, "<bos>") for c in chats]}))`;
  const got = JSON.parse(runPython(py, ['-c', script], { input: JSON.stringify(chats) }));
  const r = new Rng(42);
  assert.deepEqual(got.draws, Array.from({ length: 5 }, () => r.next()));
  const plans = [1, 13, 16, 150].flatMap((n) => [0, 100].flatMap((minSteps) => [[4, 1], [2, 3]].map(([batchSize, gradAccum]) => trainingPlan(n, { epochs: 3, minSteps, batchSize, gradAccum }).totalSteps)));
  assert.deepEqual(got.plans, plans);
  const u = new Rng(7);
  assert.deepEqual(got.uniforms, Array.from({ length: 6 }, () => u.next()));
  assert.deepEqual(got.shuffle, shuffled([...Array(10).keys()], new Rng(3)));
  const items = Array.from({ length: 23 }, (_, i) => ({ id: `e${i}` }));
  assert.deepEqual(got.val, splitValidation(items, { fraction: 0.2, seed: 42 }).val.map((e) => e.id));
  const sched = (['constant', 'linear', 'cosine'] as const).flatMap((kind) => [...Array(11).keys()].map((s) => scheduleFactor({ kind, warmupSteps: 2, totalSteps: 10 }, s)));
  got.sched.forEach((x: number, i: number) => assert.ok(Math.abs(x - sched[i]) < 1e-15, `schedule ${i}`));
  chats.forEach((c, i) => {
    const want = renderChat(c, { addGenerationPrompt: false });
    assert.equal(got.chats[i][0], want.text);
    assert.deepEqual(got.chats[i][1], want.assistantRanges);
  });
});

test('train.py\'s loop (plain-torch Gemma 3) takes gemma-tune train\'s steps: seeded init and order, split, early stopping, kept adapter', async (t) => {
  const py = pythonWith(['torch', 'numpy']);
  if (!py) return t.skip('no python3 with torch and numpy (apt-get install python3-torch)');
  const s = await setup(t);
  const out = path.join(s.dir, 'py');
  runPython(py, [PLAIN, path.join(s.job, 'train.py'), '--base', s.model, '--data', s.tokensFile, '--out', out, '--cpu']);
  const theirs = lossesOf(fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').split('\n'));
  const oursOut = path.join(s.dir, 'ours');
  const mine = ours(['--model', s.model, '--data', s.tokensFile, '--out', oursOut]);
  assert.equal(mine.losses.length, 12, '16 training examples in steps of 4, 3 epochs');
  assertSameRun(theirs, mine);
  const diffs = tensorDiffs(safetensorsTensors(path.join(out, 'adapter', 'adapter_model.safetensors')), safetensorsTensors(path.join(oursOut, 'adapter_model.safetensors')));
  assert.ok(diffs.every(([, d]) => d < 1e-5), `kept adapters differ: ${diffs.filter(([, d]) => d >= 1e-5).slice(0, 3)}`);
  const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(metrics.map((m) => m.type), ['start', ...Array(4).fill('step'), 'eval', ...Array(4).fill('step'), 'eval', ...Array(4).fill('step'), 'eval', 'done']);
  // Each line is a record of the current version, as metricsLog.ts checks it.
  for (const m of metrics) assert.equal(parseMetricRecord(m).version, METRICS_VERSION);
});

test('train.py from an --init-adapter our writer wrote, --no-shuffle, 3 steps: gemma-tune train\'s losses', async (t) => {
  const py = pythonWith(['torch', 'numpy']);
  if (!py) return t.skip('no python3 with torch and numpy (apt-get install python3-torch)');
  const s = await setup(t);
  const init = initLora(GEMMA3_TINY, 16, 32, ALL_TARGETS, 9);
  const rng = new Rng(5);
  for (const m of init.modules) for (let i = 0; i < m.b.length; i++) m.b[i] = 0.02 * rng.normal(); // B ≠ 0: A learns from the first step
  const initDir = path.join(s.dir, 'init');
  writePeftAdapter(initDir, init);
  const out = path.join(s.dir, 'py');
  runPython(py, [PLAIN, path.join(s.job, 'train.py'), '--base', s.model, '--data', s.tokensFile, '--out', out, '--cpu', '--init-adapter', initDir, '--no-shuffle', '--max-steps', '3']);
  const theirs = lossesOf(fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').split('\n'));
  const mine = ours(['--model', s.model, '--data', s.tokensFile, '--out', path.join(s.dir, 'ours'), '--init-adapter', initDir, '--no-shuffle', '--steps', '3']);
  assertSameRun(theirs, mine);
  const wrong = path.join(s.dir, 'wrong');
  writePeftAdapter(wrong, initLora(GEMMA3_TINY, 8, 16, ALL_TARGETS, 9));
  const r = spawnSync(py, [PLAIN, path.join(s.job, 'train.py'), '--base', s.model, '--data', s.tokensFile, '--out', out, '--cpu', '--init-adapter', wrong], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^train\.py: --init-adapter .*: r 8 \/ alpha 16 differ from the job's 16 \/ 32$/m);
});

test('train.py with transformers + PEFT: our tokens and losses; its adapter imported gives PEFT\'s logits; 2 processes = 1', async (t) => {
  const py = hfPython();
  if (!py) return t.skip('no Python with transformers + PEFT (bash test/job/hf-venv.sh, or GEMMA_TUNE_HF_PYTHON)');
  const s = await setup(t);
  const out = path.join(s.dir, 'hf');
  const dump = path.join(s.dir, 'dump.jsonl');
  runPython(py, [path.join(s.job, 'train.py'), '--out', out, '--cpu', '--dump-tokens', dump]);
  const dumped = fs.readFileSync(dump, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(dumped, s.tokens.map((e) => ({ id: e.id, input_ids: e.inputIds, labels: e.labels })), 'tokenizers + the ported template give our tokens and labels');
  const theirs = lossesOf(fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').split('\n'));
  const mine = ours(['--model', s.model, '--data', s.tokensFile, '--out', path.join(s.dir, 'ours')]);
  assertSameRun(theirs, mine);

  const imp = cli(['import-adapter', '--adapter', out, '--task', s.task.dir, '--model', s.model]);
  assert.equal(imp.status, 0, imp.stderr);
  const ids = s.tokens[0].inputIds.slice(0, 24).join(',');
  const peftFile = path.join(s.dir, 'peft.f32'), oursFile = path.join(s.dir, 'ours.f32');
  runPython(py, [path.join(ROOT, 'test/job/peft_logits.py'), s.model, path.join(out, 'adapter'), ids, peftFile]);
  const lg = cli(['logits', '--model', s.model, '--precision', 'f32', '--adapter', s.store.adapterDir(s.task.id), '--tokens', ids, '--out', oursFile]);
  assert.equal(lg.status, 0, lg.stderr);
  const a = new Float32Array(fs.readFileSync(peftFile).buffer.slice(0)), b = new Float32Array(fs.readFileSync(oursFile).buffer.slice(0));
  assert.equal(a.length, b.length);
  assert.ok(maxAbsDiff(a, b) <= 1e-4, `logits differ by ${maxAbsDiff(a, b)}`);

  const torchrun = path.join(path.dirname(py), 'torchrun');
  if (!fs.existsSync(torchrun)) return;
  const two = path.join(s.dir, 'two');
  const r = spawnSync(torchrun, ['--nproc_per_node', '2', path.join(s.job, 'train.py'), '--out', two, '--cpu'], { encoding: 'utf8', timeout: 300000 });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /2 process\(es\)/);
  assertSameRun(lossesOf(fs.readFileSync(path.join(two, 'log.jsonl'), 'utf8').split('\n')), mine);
});
