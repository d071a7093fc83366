// `gemma-tune demo` (`npm run demo`): fine-tunes the example tasks of examples/ and prints, for each,
// the held-out test inputs answered before and after training. It runs on the default model (Gemma 3
// 270M IT QAT Q4_0) when a copy is on this machine (see demo/modelLocation.ts), otherwise on a small
// random-weight model it generates (GEMMA3_TINY's layers with the real Gemma 3 tokenizer), which
// knows nothing before training. Either way every task trains with its own task.json settings, which
// are the extension's defaults (engine/train/defaults.ts): what the demo shows is what a user's
// first run does.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CliCommand } from '../command';
import { numberFlag, parseFlags, UsageError } from '../args';
import { listDemoTasks, readDemoTask } from '../demo/demoTask';
import { DEMO_CONFIG, findLocalDefaultModel, writeDemoModel, cacheDir, MODEL_ENV } from '../demo/modelLocation';
import { runDemoTask, type DemoSettings } from '../demo/runDemo';
import { deviceFlag, threadsFlag } from './modelFlags';
import { formatDemoResult } from '../demo/report';
import { DEFAULT_MODEL } from '../../engine/model/modelManifest';
import type { TaskConfig } from '../../store/task';
import { fullHyperparameters } from '../../engine/train/defaults';

/** The task's own hyperparameters: what the extension trains with. */
export function taskSettings(t: TaskConfig): Omit<DemoSettings, 'threads' | 'devices'> {
  return { hyperparameters: fullHyperparameters(t.hyperparameters), precision: 'q4' };
}

/** The examples/ folder of this package: beside dist/ (bundled CLI) or three levels above src/cli/commands/. */
export function examplesDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    const cand = path.join(dir, 'examples');
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(cand)) return cand;
    dir = path.dirname(dir);
  }
  throw new Error(`no examples/ folder found above ${__dirname}; give --examples DIR`);
}

export const demoCommand: CliCommand = {
  name: 'demo',
  usage: 'gemma-tune demo [--task NAME,…] [--examples DIR] [--model PATH] [--out DIR] [--epochs N] [--tests N] [--threads auto|N] [--device auto|cpu|webgpu] [--json]',
  summary: 'Fine-tune the example tasks (examples/) and print their held-out inputs answered before and after training.',
  async run(argv) {
    const p = parseFlags(argv, { values: ['task', 'examples', 'model', 'out', 'epochs', 'tests', 'threads', 'device'], booleans: ['json'] });
    const exDir = p.values.get('examples') ?? examplesDir();
    const all = listDemoTasks(exDir);
    const wanted = p.values.get('task')?.split(',').map((s) => s.trim()).filter(Boolean);
    const dirs = wanted ? wanted.map((w) => {
      const d = all.find((x) => path.basename(x) === w);
      if (!d) throw new UsageError(`--task: no task "${w}" in ${exDir} (there are: ${all.map((x) => path.basename(x)).join(', ')})`);
      return d;
    }) : all;
    if (dirs.length === 0) throw new Error(`${exDir}: no task folders (with a task.json)`);
    const tasks = dirs.map(readDemoTask);
    const threads = threadsFlag(p);
    const devices = await deviceFlag(p);
    const json = p.booleans.has('json');
    const say = (s: string) => { if (!json) process.stdout.write(s + '\n'); };
    const outRoot = path.resolve(p.values.get('out') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-demo-')));
    fs.mkdirSync(outRoot, { recursive: true });

    const t0 = performance.now();
    let modelPath = p.values.get('model');
    let builtIn = false;
    if (modelPath) {
      say(`model: ${modelPath} (given with --model)`);
    } else {
      const found = await findLocalDefaultModel();
      if (found) {
        modelPath = found.path;
        say(`model: ${DEFAULT_MODEL.title}, ${found.source === 'env' ? `from $${MODEL_ENV}` : found.source === 'cache' ? 'from the local cache' : 'from the extension\'s download'}: ${modelPath}`);
      } else {
        builtIn = true;
        modelPath = writeDemoModel(path.join(outRoot, 'built-in-model'), 7);
        const c = DEMO_CONFIG;
        say(`model: the default model (${DEFAULT_MODEL.file}) is not on this machine, so the demo uses a small BUILT-IN RANDOM-WEIGHT model it`);
        say(`       just generated (${c.layers} layers, hidden ${c.hidden}, Gemma 3's real tokenizer and chat template, ${modelPath}).`);
        say('       It knows nothing before training: "before" answers are at chance, and everything "after" knows comes from the 20 examples.');
        say(`       For the real model, put ${DEFAULT_MODEL.file} at ${path.join(cacheDir(), 'models', DEFAULT_MODEL.id, DEFAULT_MODEL.file)}`);
        say(`       (or set $${MODEL_ENV}); \`gemma-tune download-model\` downloads it there, and the extension's "Gemma: Download default model" is found too.`);
      }
    }
    const epochs = p.values.has('epochs') ? numberFlag(p, 'epochs', 1, 1, 1000, true) : undefined;
    const maxTests = p.values.has('tests') ? numberFlag(p, 'tests', 1, 1, 10_000, true) : undefined;

    // The random-weight model learns a keyword rule from 20 examples but not to copy fields out of
    // its input (measured: extract exact match stays at 0%), so by default it runs the classify tasks.
    const run = builtIn && !wanted ? tasks.filter((t) => t.config.kind === 'classify') : tasks;
    if (run.length < tasks.length) say(`       It runs the classify task${run.length > 1 ? 's' : ''} only (extraction needs the real model; try --task ${tasks.filter((t) => !run.includes(t)).map((t) => path.basename(t.dir)).join(',')}).`);
    const results = [];
    for (const task of run) {
      const base = taskSettings(task.config);
      const s: DemoSettings = { ...base, threads, devices, ...(maxTests !== undefined ? { maxTests } : {}) };
      if (epochs !== undefined) s.hyperparameters = { ...s.hyperparameters, epochs };
      const hp = s.hyperparameters;
      say('');
      say(`== ${task.config.name} (${task.config.kind}, ${path.relative(process.cwd(), task.dir) || task.dir}): ${task.train.length} training examples, ${Math.min(task.test.length, maxTests ?? Infinity)} held-out test inputs`);
      say(`   LoRA r ${hp.rank}, alpha ${hp.alpha}, ${hp.targets.join(',')}; lr ${hp.learningRate} ${hp.schedule}; ${hp.epochs} epochs${hp.minSteps > 0 ? ` and at least ${hp.minSteps} steps` : ''}, batch ${hp.batchSize}, patience ${hp.patience}; ${s.precision} base`);
      say('   (the task\'s task.json settings: the extension\'s defaults, as a first run in the panel trains it)');
      let lastStep = 0;
      const r = await runDemoTask(task, modelPath, path.join(outRoot, path.basename(task.dir)), s, (e) => {
        if (json || e.type !== 'step') return;
        if (e.step - lastStep >= 8 || e.step === 1) {
          lastStep = e.step;
          say(`   step ${e.step}: loss ${e.loss.toFixed(3)}, ${e.tokensPerSec.toFixed(0)} tokens/s`);
        }
      });
      results.push(r);
      say('');
      for (const line of formatDemoResult(task.config, r)) say(line);
    }
    const wall = (performance.now() - t0) / 1000;
    if (json) process.stdout.write(JSON.stringify({ model: modelPath, builtIn, wallSeconds: wall, results }) + '\n');
    else say(`\ndone in ${wall.toFixed(0)} s (${builtIn ? 'built-in random-weight model' : 'default model'}); adapters under ${outRoot}`);
  },
};
