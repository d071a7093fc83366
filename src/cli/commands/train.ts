// `gemma-tune train`: LoRA fine-tuning of a local Gemma 3 on a JSONL file, saving a PEFT adapter.
// With --json every event is one JSON object per line; a step event's `loss` is the loss of that step's
// forward pass, before its update (as the Hugging Face Trainer logs it).
//
// Defaults (r 16, alpha 32, all seven projections, lr 2e-4, linear, batch 4, 3 epochs, clip 1.0, 20%
// held out, patience 2) live in engine/train/defaults.ts, shared with task.json; the reasons are there.

import * as path from 'node:path';
import type { CliCommand } from '../command';
import { choiceFlag, numberFlag, parseFlags, required, UsageError } from '../args';
import { openWeights } from '../../engine/model/load';
import { createTokenizer } from '../../engine/model/tokenizer';
import { readExamples } from '../../engine/train/examples';
import { modelRenderer, tokenizeExample, type ExampleRenderer } from '../../engine/train/tokenize';
import { splitValidation } from '../../engine/train/split';
import { ALL_TARGETS, initLora, type LoraTarget } from '../../engine/train/lora';
import { readPeftParams } from '../../engine/train/peftParams';
import { train, type TrainEvent } from '../../engine/train/trainer';
import { createOrtEngine } from '../../engine/train/ortEngine';
import type { ScheduleKind } from '../../engine/train/schedule';
import { progressPrinter } from '../trainProgress';
import { deviceFlag, precisionFlag } from './modelFlags';
import { TRAIN_DEFAULTS as D } from '../../engine/train/defaults';

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

export const trainCommand: CliCommand = {
  name: 'train',
  usage: 'gemma-tune train --model PATH --data FILE.jsonl --out DIR [--epochs N] [--steps N] [--lr X] [--schedule constant|linear|cosine] [--warmup N] [--weight-decay X] [--max-grad-norm X] [--rank R] [--alpha A] [--targets q,k,v,o,gate,up,down] [--batch B] [--grad-accum N] [--val-split F] [--val-ids ID,…] [--patience N] [--eval-every N] [--checkpoint-every SECONDS] [--seed S] [--init-adapter DIR] [--resume] [--no-shuffle] [--precision q4|f32] [--threads N] [--device auto|cpu|webgpu] [--max-tokens N] [--json]',
  summary: 'Fine-tune LoRA adapters on JSONL examples (TRL conversational, prompt-completion or pre-tokenised); saves a PEFT adapter.',
  async run(argv) {
    const p = parseFlags(argv, {
      values: ['model', 'data', 'out', 'epochs', 'steps', 'lr', 'schedule', 'warmup', 'weight-decay', 'max-grad-norm', 'rank', 'alpha', 'targets',
        'batch', 'grad-accum', 'val-split', 'val-ids', 'patience', 'eval-every', 'checkpoint-every', 'seed', 'init-adapter', 'precision', 'threads', 'device', 'max-tokens'],
      booleans: ['no-shuffle', 'json', 'resume'],
    });
    const modelPath = required(p, 'model');
    const dataPath = required(p, 'data');
    const outDir = path.resolve(required(p, 'out'));
    const precision = precisionFlag(p);
    const schedule = choiceFlag<ScheduleKind>(p, 'schedule', ['constant', 'linear', 'cosine'], D.schedule);
    const epochs = numberFlag(p, 'epochs', D.epochs, 1, 1000, true);
    const steps = p.values.has('steps') ? numberFlag(p, 'steps', 0, 1, 1e7, true) : undefined;
    const lr = numberFlag(p, 'lr', D.lr, 0, 10);
    const warmup = numberFlag(p, 'warmup', D.warmupSteps, 0, 1e7, true);
    const weightDecay = numberFlag(p, 'weight-decay', D.weightDecay, 0, 10);
    const maxGradNorm = numberFlag(p, 'max-grad-norm', D.maxGradNorm, 0, 1e6);
    const batchSize = numberFlag(p, 'batch', D.batchSize, 1, 4096, true);
    const gradAccum = numberFlag(p, 'grad-accum', D.gradAccum, 1, 4096, true);
    const valSplit = numberFlag(p, 'val-split', D.valSplit, 0, 0.9);
    const patience = numberFlag(p, 'patience', D.patience, 0, 1000, true);
    const evalEvery = numberFlag(p, 'eval-every', D.evalEvery, 0, 1e7, true);
    // Seconds between resumable checkpoints (and one at every epoch's end); 0 = epoch ends only.
    const checkpointEverySeconds = numberFlag(p, 'checkpoint-every', D.checkpointEverySeconds, 0, 1e7);
    const seed = numberFlag(p, 'seed', D.seed, 0, 2 ** 32 - 1, true);
    const threads = numberFlag(p, 'threads', D.threads, 1, 256, true);
    const device = (await deviceFlag(p)).training;
    const maxTokens = numberFlag(p, 'max-tokens', D.maxTokens, 2, 32768, true);
    const initDir = p.values.get('init-adapter');
    const json = p.booleans.has('json');
    // LoRA shape flags are checked before the model and data load, so a typo fails at once.
    const rank = numberFlag(p, 'rank', D.rank, 1, 1024, true);
    const alpha = numberFlag(p, 'alpha', 2 * rank, 1e-6, 1e6);
    const targets = p.values.has('targets') ? parseTargets(p.values.get('targets')!) : [...ALL_TARGETS];

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
    const split = splitValidation(tokenized, { fraction: valSplit, seed, pinned: pinned ? new Set(pinned.split(',').map((s) => s.trim())) : undefined });

    let params;
    if (initDir !== undefined) {
      params = readPeftParams(initDir, cfg);
      for (const [flag, v] of [['rank', params.rank], ['alpha', params.alpha]] as const) {
        if (p.values.has(flag) && Number(p.values.get(flag)) !== v) throw new UsageError(`--${flag} ${p.values.get(flag)} differs from the --init-adapter's ${v}`);
      }
      if (p.values.has('targets') && targets.join() !== params.targets.join()) throw new UsageError('--targets differ from the --init-adapter\'s');
    } else {
      params = initLora(cfg, rank, alpha, targets, seed);
    }

    const engine = await createOrtEngine(opened.source, { precision, rank: params.rank, alpha: params.alpha, targets: params.targets, threads, device });
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
        epochs, maxSteps: steps, lr, schedule, warmupSteps: warmup, weightDecay, maxGradNorm, batchSize, gradAccum, seed,
        shuffle: !p.booleans.has('no-shuffle'), evalEvery, checkpointEverySeconds, patience, padId: cfg.padId, outDir,
        baseModel: path.resolve(modelPath), resume: p.booleans.has('resume'), signal: abort.signal, onEvent: print,
      });
    } finally {
      process.off('SIGINT', onSigint);
      await engine.dispose();
    }
  },
};
