// `gemma-tune train`: LoRA fine-tuning of a local Gemma 3 on a JSONL file, saving a PEFT adapter.
// With --json every event is one JSON object per line; a step event's `loss` is the loss of that step's
// forward pass, before its update (as the Hugging Face Trainer logs it).
//
// Defaults (r 16, alpha 32, all seven projections, lr 2e-4, linear, batch 4, 3 epochs and at least 100
// steps, clip 1.0, 20% held out, patience 5) live in engine/train/defaults.ts, shared with task.json;
// the reasons and the recipes they come from are there.

import * as path from 'node:path';
import type { CliCommand } from '../command';
import { choiceFlag, numberFlag, type ParsedArgs, parseFlags, required, UsageError } from '../args';
import { modelIdentity } from '../../engine/model/identity';
import { openWeights } from '../../engine/model/load';
import { createTokenizer } from '../../engine/model/tokenizer';
import { readExamples } from '../../engine/train/examples';
import { modelRenderer, tokenizeExample, type ExampleRenderer } from '../../engine/train/tokenize';
import { splitValidation } from '../../engine/train/split';
import { ALL_TARGETS, initLora, type LoraTarget } from '../../engine/train/lora';
import { readPeftParams } from '../../engine/train/peftParams';
import { train, type TrainEvent } from '../../engine/train/trainer';
import { createStepEngine } from '../../engine/train/stepEngine';
import type { ScheduleKind } from '../../engine/train/schedule';
import { progressPrinter } from '../trainProgress';
import { deviceFlag, precisionFlag, threadsFlag } from './modelFlags';
import { type CliSpec, type FullHyperparameters, HYPERPARAMETER_KEYS, HYPERPARAMETERS, SCHEDULES, TRAIN_DEFAULTS as D, trainSettingsOf } from '../../engine/train/defaults';
import { lockTrainingOfTaskAround } from '../../store/taskStore';

const TARGET_NAMES: Record<string, LoraTarget> = {
  q: 'q', k: 'k', v: 'v', o: 'o', gate: 'gate', up: 'up', down: 'down',
  q_proj: 'q', k_proj: 'k', v_proj: 'v', o_proj: 'o', gate_proj: 'gate', up_proj: 'up', down_proj: 'down',
};

/** Parses --targets q,k,v,o,gate,up,down (HF names like q_proj accepted too). */
export function parseTargets(raw: string): LoraTarget[] {
  const out = raw.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const t = TARGET_NAMES[s];
    if (!t) throw new UsageError(`--targets: "${s}" is not one of q,k,v,o,gate,up,down`);
    return t;
  });
  if (out.length === 0) throw new UsageError('--targets is empty');
  return ALL_TARGETS.filter((t) => out.includes(t));
}

/** The usage of one setting's flag, e.g. `[--lr X]`. */
function settingUsage(cli: CliSpec): string {
  if (cli.kind === 'schedule') return `[--${cli.flag} ${SCHEDULES.join('|')}]`;
  if (cli.kind === 'targets') return `[--${cli.flag} ${ALL_TARGETS.join(',')}]`;
  return `[--${cli.flag} ${cli.int ? 'N' : 'X'}]`;
}

/** The task settings (engine/train/defaults.ts) as the flags give them; a flag not given is the setting's default (alpha: 2 × rank). */
export function hyperparameterFlags(p: ParsedArgs): FullHyperparameters {
  const out: Record<string, unknown> = {};
  for (const key of HYPERPARAMETER_KEYS) {
    const { cli, default: fallback } = HYPERPARAMETERS[key];
    const given = p.values.get(cli.flag);
    if (cli.kind === 'number') out[key] = numberFlag(p, cli.flag, fallback as number, cli.min, cli.max, cli.int);
    else if (cli.kind === 'schedule') out[key] = choiceFlag(p, cli.flag, SCHEDULES, fallback as ScheduleKind);
    else out[key] = given !== undefined ? parseTargets(given) : [...ALL_TARGETS];
  }
  if (!p.values.has(HYPERPARAMETERS.alpha.cli.flag)) out.alpha = 2 * (out.rank as number);
  return out as FullHyperparameters;
}

export const trainCommand: CliCommand = {
  name: 'train',
  usage: `gemma-tune train --model PATH --data FILE.jsonl --out DIR ${HYPERPARAMETER_KEYS.map((k) => settingUsage(HYPERPARAMETERS[k].cli)).join(' ')} [--steps N] [--val-ids ID,…] [--eval-every N] [--checkpoint-every SECONDS] [--init-adapter DIR] [--resume] [--no-shuffle] [--precision q4|f32] [--threads auto|N] [--device auto|cpu|webgpu] [--max-tokens N] [--json]`,
  summary: 'Fine-tune LoRA adapters on JSONL examples (TRL conversational, prompt-completion or pre-tokenised); saves a PEFT adapter.',
  async run(argv) {
    const p = parseFlags(argv, {
      values: ['model', 'data', 'out', ...HYPERPARAMETER_KEYS.map((k) => HYPERPARAMETERS[k].cli.flag), 'steps', 'val-ids', 'eval-every', 'checkpoint-every', 'init-adapter', 'precision', 'threads', 'device', 'max-tokens'],
      booleans: ['no-shuffle', 'json', 'resume'],
    });
    const modelPath = required(p, 'model');
    const dataPath = required(p, 'data');
    const outDir = path.resolve(required(p, 'out'));
    const precision = precisionFlag(p);
    // The task settings, and the LoRA shape with them, are checked before the model and data load, so a typo fails at once.
    const hp = hyperparameterFlags(p);
    const steps = p.values.has('steps') ? numberFlag(p, 'steps', 0, 1, 1e7, true) : undefined;
    const evalEvery = numberFlag(p, 'eval-every', D.evalEvery, 0, 1e7, true);
    // Seconds between resumable checkpoints (and one at every epoch's end); 0 = epoch ends only.
    const checkpointEverySeconds = numberFlag(p, 'checkpoint-every', D.checkpointEverySeconds, 0, 1e7);
    const threads = threadsFlag(p);
    const device = (await deviceFlag(p)).training;
    const maxTokens = numberFlag(p, 'max-tokens', D.maxTokens, 2, 32768, true);
    const initDir = p.values.get('init-adapter');
    const json = p.booleans.has('json');

    // --out inside a workspace task folder: hold the task's training lock, so that no VS Code window or
    // train-task trains it meanwhile (released below, or when the process exits).
    const taskLock = await lockTrainingOfTaskAround(outDir, 'gemma-tune train');
    // Streamed from the file into the session's data file: the weights are never whole in JS.
    const opened = openWeights(modelPath, { precision });
    const cfg = opened.source.config;
    const tokenizerSource = opened.tokenizerSource;
    const examples = readExamples(dataPath);
    const needsText = examples.some((e) => e.kind !== 'tokens');
    let renderer: ExampleRenderer | undefined;
    if (needsText) {
      if (!tokenizerSource) throw new Error(`${dataPath} has text examples but ${modelPath} has no tokenizer; give pre-tokenised input_ids`);
      renderer = modelRenderer(createTokenizer(tokenizerSource), cfg);
    }
    const tokenized = examples.map((e) => tokenizeExample(e, renderer, maxTokens));
    for (const e of tokenized) {
      const bad = e.inputIds.find((t) => t >= cfg.vocabSize);
      if (bad !== undefined) throw new Error(`${dataPath}: example ${e.id} has token id ${bad}, outside the model's vocabulary (${cfg.vocabSize})`);
    }
    const pinned = p.values.get('val-ids');
    const split = splitValidation(tokenized, { fraction: hp.valSplit, seed: hp.seed, pinned: pinned ? new Set(pinned.split(',').map((s) => s.trim())) : undefined });

    let params;
    if (initDir !== undefined) {
      params = readPeftParams(initDir, cfg);
      for (const [flag, v] of [['rank', params.rank], ['alpha', params.alpha]] as const) {
        if (p.values.has(flag) && Number(p.values.get(flag)) !== v) throw new UsageError(`--${flag} ${p.values.get(flag)} differs from the --init-adapter's ${v}`);
      }
      if (p.values.has('targets') && hp.targets.join() !== params.targets.join()) throw new UsageError('--targets differ from the --init-adapter\'s');
    } else {
      params = initLora(cfg, hp.rank, hp.alpha, hp.targets, hp.seed);
    }

    const { engine } = await createStepEngine(opened.source, { precision, rank: params.rank, alpha: params.alpha, targets: params.targets, threads, device });
    const print = json ? (e: TrainEvent) => process.stdout.write(JSON.stringify(e) + '\n') : progressPrinter(process.stdout);
    // Ctrl-C stops between steps and leaves the best adapter so far on disk; a second one exits at once.
    const abort = new AbortController();
    const onSigint = () => {
      if (abort.signal.aborted) process.exit(130);
      abort.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      await train(cfg, engine, split, params, {
        ...trainSettingsOf(hp), maxSteps: steps,
        shuffle: !p.booleans.has('no-shuffle'), evalEvery, checkpointEverySeconds, padId: cfg.padId, outDir,
        baseModel: modelIdentity(modelPath), resume: p.booleans.has('resume'), signal: abort.signal, onEvent: print,
      });
    } finally {
      process.off('SIGINT', onSigint);
      await engine.dispose();
      await taskLock?.release();
    }
  },
};
