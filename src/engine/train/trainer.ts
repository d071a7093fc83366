// The training loop: epochs of shuffled micro-batches, gradient accumulation, clipping, AdamW with a
// schedule, evaluation with early stopping, events, cancellation and resume (from a checkpoint written
// at epoch ends and every checkpointEverySeconds, so a crash mid-epoch loses little). It knows nothing
// about ONNX: a StepEngine computes losses and gradients (the ORT train-step graph in production), so
// the loop's bookkeeping is testable on its own and the graph is checked against Hugging Face separately.
// A NaN or infinite loss, gradient norm, validation loss or weight stops the run at once with
// TrainingDivergedError, before that step's update and before anything more is written: the adapter and
// checkpoint on disk stay those of the last good step.

import * as path from 'node:path';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { AdamW, clipGradNorm } from './adamw';
import { planSteps, runsOf, type MicroBatch } from './batch';
import { trainingPlan } from './plan';
import { RunProgress } from './checkpoint';
import { EarlyStopping } from './earlyStop';
import { cloneLora, flatTensors, parameterCount, type LoraParams } from './lora';
import { firstNonFiniteF32 } from '../model/finite';
import { writePeftAdapter } from './peftWriter';
import { shuffled } from '../rng';
import { learningRate, type ScheduleKind } from './schedule';
import { TRAIN_DEFAULTS } from './defaults';
import { untimed, type PhaseClock } from './phaseClock';
import type { TrainEvent } from './events';
import type { TokenizedExample } from './tokenize';
import type { GemmaConfig } from '../model/config';
import type { ModelIdentity } from '../model/identity';
import { ADAPTER_WEIGHTS_FILE, CHECKPOINT_FILE } from '../../common/files';

/** Computes what one optimizer step needs; the ORT step graph implements it. */
export interface StepEngine {
  /**
   * Σ cross-entropy over the batch's label tokens, and d(scale · Σ CE)/dθ for every tensor of flatTensors(params),
   * in buffers of the caller's own (fresh per call: the trainer sums into and clips them in place).
   */
  lossAndGrads(batch: MicroBatch, params: LoraParams, scale: number): Promise<{ lossSum: number; grads: Float32Array[] }>;
  /** Validation: Σ cross-entropy, and per label position 1 where the argmax of the logits is the label. */
  evaluate(batch: MicroBatch, params: LoraParams): Promise<{ lossSum: number; hits: Float32Array }>;
}

export interface TrainOptions {
  epochs: number;
  /** Optimizer steps at least: more whole epochs run when `epochs` make fewer (plan.ts); 0 or absent = `epochs` alone. */
  minSteps?: number;
  /** Optimizer steps in all; overrides epochs and minSteps when set. */
  maxSteps?: number;
  lr: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  weightDecay: number;
  /** 0 turns clipping off. */
  maxGradNorm: number;
  batchSize: number;
  gradAccum: number;
  seed: number;
  shuffle: boolean;
  /** Evaluate every N optimizer steps; 0 = at the end of every epoch. */
  evalEvery: number;
  /** Evaluations without improvement before stopping; 0 = never stop early. */
  patience: number;
  padId: number;
  /** The adapter folder; the run's checkpoint lives there too. */
  outDir: string;
  /** What adapter_config.json names as the base model. */
  baseModel?: ModelIdentity | null;
  resume?: boolean;
  /** Also checkpoint after a step once this many seconds passed since the last write; 0 = only at epoch ends. Default TRAIN_DEFAULTS.checkpointEverySeconds. */
  checkpointEverySeconds?: number;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
  /** A task metric on the held-out examples with the current adapter (exact match, label accuracy). */
  evaluateTask?: (params: LoraParams, val: TokenizedExample[]) => Promise<{ name: string; value: number }>;
  /** Sums the wall and CPU time of the run's phases (bench --train --phases). */
  phases?: PhaseClock;
}

export type { TrainEvent };

export interface TrainResult {
  reason: 'completed' | 'early-stop' | 'cancelled';
  step: number;
  /** The step whose adapter was saved (the best evaluation's, or the last step without validation). */
  savedStep: number;
  bestValLoss: number | null;
  /** The saved adapter. */
  params: LoraParams;
}

/** Training produced a NaN or infinity; `step` is the optimizer step (1-based) where it appeared. */
export class TrainingDivergedError extends Error {
  constructor(readonly step: number, what: string, value: number, lr: number) {
    super(`${what} became ${Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity'} at step ${step}: lower the learning rate (it is ${lr})`);
    this.name = 'TrainingDivergedError';
  }
}

/** Throws TrainingDivergedError when a value of the adapter is NaN or infinite. */
function requireFiniteParams(p: LoraParams, step: number, lr: number): void {
  for (const t of flatTensors(p)) {
    const i = firstNonFiniteF32(t);
    if (i >= 0) throw new TrainingDivergedError(step, 'the adapter weights', t[i], lr);
  }
}

/** A rate or estimate as events report it: 0 where it could not be measured (a step too short for the clock). */
function finiteRate(x: number): number {
  return Number.isFinite(x) && x >= 0 ? x : 0;
}

/** A digest of the examples' ids, input ids and labels (what a resumed run must train on again). */
function examplesDigest(examples: readonly TokenizedExample[]): string {
  const h = createHash('sha256');
  for (const e of examples) h.update(JSON.stringify([e.id, e.inputIds, e.labels]));
  return h.digest('hex');
}

/**
 * What each option is to a resume: a setting of the run (in its fingerprint: a resume with another value
 * is refused), its length (a resume may extend a run), or how this process runs it. A Record, so that a
 * new option cannot be added without saying which.
 */
const OPTION_ROLES: Record<keyof TrainOptions, 'setting' | 'length' | 'process'> = {
  epochs: 'length', minSteps: 'length', maxSteps: 'length',
  lr: 'setting', schedule: 'setting', warmupSteps: 'setting', weightDecay: 'setting', maxGradNorm: 'setting', batchSize: 'setting',
  gradAccum: 'setting', seed: 'setting', shuffle: 'setting', evalEvery: 'setting', patience: 'setting', padId: 'setting',
  outDir: 'process', baseModel: 'process', resume: 'process', checkpointEverySeconds: 'process', signal: 'process', onEvent: 'process', evaluateTask: 'process', phases: 'process',
};
/** The fingerprint's format; checkpoints of earlier versions hold a fingerprint of fewer settings, without it. */
const FINGERPRINT_VERSION = 2;

interface Fingerprint {
  version: typeof FINGERPRINT_VERSION;
  /** Every option whose role is 'setting', by name. */
  settings: Record<string, unknown>;
  train: string[];
  val: string[];
  /** The examples' tokens: an example edited under the same id would otherwise resume silently. */
  tokens: string;
}

/** What a resumed run must have in common with the run it goes on: every setting, the examples and their tokens. */
function runFingerprint(opts: TrainOptions, data: { train: TokenizedExample[]; val: TokenizedExample[] }): string {
  const settings = Object.fromEntries((Object.keys(OPTION_ROLES) as (keyof TrainOptions)[]).filter((k) => OPTION_ROLES[k] === 'setting').sort().map((k) => [k, opts[k] ?? null]));
  const fp: Fingerprint = { version: FINGERPRINT_VERSION, settings, train: data.train.map((e) => e.id), val: data.val.map((e) => e.id), tokens: examplesDigest([...data.train, ...data.val]) };
  return JSON.stringify(fp);
}

/** How the checkpoint's fingerprint differs from this run's, in words; null when they are the same. */
function fingerprintDifference(saved: string, current: string): string | null {
  if (saved === current) return null;
  let was: Partial<Fingerprint> | null = null;
  try {
    was = JSON.parse(saved) as Partial<Fingerprint>;
  } catch {
    // not JSON: said below
  }
  if (was?.version !== FINGERPRINT_VERSION || typeof was.settings !== 'object' || was.settings === null) {
    return 'its checkpoint was written by an earlier version of Gemma Tune, which recorded fewer of its settings';
  }
  const now = JSON.parse(current) as Fingerprint;
  const settings = Object.keys(now.settings).filter((k) => JSON.stringify(was.settings![k] ?? null) !== JSON.stringify(now.settings[k]))
    .map((k) => `${k} is ${JSON.stringify(now.settings[k])}, the run's was ${JSON.stringify(was.settings![k] ?? null)}`);
  const data = [
    JSON.stringify(was.train) !== JSON.stringify(now.train) ? 'the training examples differ' : '',
    JSON.stringify(was.val) !== JSON.stringify(now.val) ? 'the held-out examples differ' : '',
    was.tokens !== now.tokens && JSON.stringify(was.train) === JSON.stringify(now.train) && JSON.stringify(was.val) === JSON.stringify(now.val) ? 'an example\'s text changed' : '',
  ].filter(Boolean);
  return [...settings, ...data].join('; ') || 'the fingerprints differ';
}

/** Runs training from `params` (modified in place) and writes the chosen adapter to opts.outDir. */
export async function train(cfg: GemmaConfig, engine: StepEngine, data: { train: TokenizedExample[]; val: TokenizedExample[] }, params: LoraParams, opts: TrainOptions): Promise<TrainResult> {
  if (data.train.length === 0) throw new RangeError('no training examples');
  const time = opts.phases ? opts.phases.time.bind(opts.phases) : untimed;
  const onEvent = opts.onEvent;
  const emit = onEvent ? (e: TrainEvent) => time('events', () => onEvent(e)) : () => {};
  const runPlan = trainingPlan(data.train.length, { epochs: opts.epochs, minSteps: opts.minSteps ?? 0, batchSize: opts.batchSize, gradAccum: opts.gradAccum });
  const spe = runPlan.stepsPerEpoch;
  const totalSteps = opts.maxSteps ?? runPlan.totalSteps;
  const tensors = flatTensors(params);
  const opt = new AdamW(tensors.map((t) => t.length), { weightDecay: opts.weightDecay });
  const early = new EarlyStopping(opts.patience);
  const ckptFile = path.join(opts.outDir, CHECKPOINT_FILE);
  const fingerprint = runFingerprint(opts, data);
  const run = new RunProgress(opts.seed, opt, early);
  if (opts.resume) run.restore(ckptFile, cfg, params, (saved) => fingerprintDifference(saved, fingerprint), new Map(data.train.map((e) => [e.id, e])));
  const resumedFromStep = run.step;
  const hasVal = data.val.length > 0;
  let best: LoraParams | null = null;
  let savedStep = early.bestStep;
  emit({ type: 'start', totalSteps, stepsPerEpoch: spe, trainExamples: data.train.length, valExamples: data.val.length, trainableParams: parameterCount(params), resumedFromStep });

  const saveAdapter = (p: LoraParams, atStep: number) => time('save adapter', () => {
    requireFiniteParams(p, atStep, opts.lr);
    writePeftAdapter(opts.outDir, p, { baseModel: opts.baseModel ?? null, metadata: { step: String(atStep) } });
    savedStep = atStep;
  });
  const checkpointEveryMs = 1000 * (opts.checkpointEverySeconds ?? TRAIN_DEFAULTS.checkpointEverySeconds);
  let lastCheckpointAt = performance.now();
  const checkpoint = () => time('checkpoint', () => {
    requireFiniteParams(params, run.step, opts.lr);
    run.save(ckptFile, params, fingerprint);
    lastCheckpointAt = performance.now();
  });

  // Exact match without generating: greedy decoding reproduces an example's answer exactly iff the
  // argmax at every label position (teacher-forced on the same prefix) is the label.
  const valRuns = runsOf(data.val, opts.padId);
  const evaluate = async (): Promise<boolean> => {
    let sum = 0, count = 0, exact = 0;
    for (const b of valRuns) {
      const r = await time('eval session', () => engine.evaluate(b, params));
      sum += r.lossSum;
      count += b.labelTargets.length;
      const allHit = new Array<boolean>(b.B).fill(true);
      b.labelPositions.forEach((pos, k) => { if (r.hits[k] !== 1) allHit[Math.floor(pos / b.T)] = false; });
      exact += allHit.filter(Boolean).length;
    }
    const valLoss = sum / count;
    if (!Number.isFinite(valLoss)) throw new TrainingDivergedError(run.step, 'validation loss', valLoss, opts.lr);
    const evaluateTask = opts.evaluateTask;
    const metric = evaluateTask ? await time('eval task', () => evaluateTask(params, data.val)) : { name: 'exact_match', value: exact / data.val.length };
    const { improved, stop } = early.observe(valLoss, run.step);
    if (improved) {
      best = cloneLora(params);
      saveAdapter(best, run.step);
    }
    emit({ type: 'eval', step: run.step, epoch: run.step / spe, valLoss, metric, improved, bestStep: early.bestStep, bestValLoss: early.bestLoss });
    return stop;
  };

  const t0 = performance.now();
  let reason: TrainResult['reason'] = 'completed';
  // A new epoch draws a new order; a resumed one keeps the order saved with it.
  const planEpoch = () => time('batching', () => planSteps(run.startEpoch(data.train, (xs, rng) => (opts.shuffle ? shuffled(xs, rng) : xs.slice())), opts.batchSize, opts.gradAccum, opts.padId));
  let plan: MicroBatch[][] = planEpoch();
  while (run.step < totalSteps) {
    if (opts.signal?.aborted) {
      reason = 'cancelled';
      break;
    }
    const ts = performance.now();
    const group = plan[run.batchInEpoch];
    const labels = group.reduce((s, b) => s + b.labelTargets.length, 0);
    let lossSum = 0, tokens = 0;
    // The session computes the next micro-batch (same parameters) while this thread adds up the last
    // one's gradients; the first one's buffers are the sum (0 + g is g).
    let acc: Float32Array[] | null = null;
    let next = time('step session', () => engine.lossAndGrads(group[0], params, 1 / labels));
    for (let k = 0; k < group.length; k++) {
      const r = await next;
      if (k + 1 < group.length) next = time('step session', () => engine.lossAndGrads(group[k + 1], params, 1 / labels));
      lossSum += r.lossSum;
      tokens += group[k].tokens;
      const sum = acc;
      if (sum) time('gradient sum', () => r.grads.forEach((g, i) => { const a = sum[i]; for (let j = 0; j < g.length; j++) a[j] += g[j]; }));
      else acc = r.grads;
    }
    if (!acc) throw new Error('an optimizer step without micro-batches');
    const gradNorm = time('clip', () => clipGradNorm(acc, opts.maxGradNorm));
    const lr = learningRate({ kind: opts.schedule, baseLr: opts.lr, warmupSteps: opts.warmupSteps, totalSteps }, run.step);
    // Checked before the update: the parameters, and what is on disk, stay those of the last good step.
    if (!Number.isFinite(lossSum)) throw new TrainingDivergedError(run.step + 1, 'loss', lossSum, opts.lr);
    if (!Number.isFinite(gradNorm)) throw new TrainingDivergedError(run.step + 1, 'gradient norm', gradNorm, opts.lr);
    time('adamw', () => opt.update(tensors, acc, lr));
    const epochEnded = run.endStep(plan.length);
    const step = run.step;
    const stepS = (performance.now() - ts) / 1000;
    const elapsedS = (performance.now() - t0) / 1000;
    const perStep = elapsedS / (step - resumedFromStep);
    emit({ type: 'step', step, epoch: step / spe, loss: lossSum / labels, lr, gradNorm, tokens, tokensPerSec: finiteRate(tokens / stepS), elapsedS, etaS: finiteRate(perStep * (totalSteps - step)) });

    const evalNow = hasVal && (opts.evalEvery > 0 ? step % opts.evalEvery === 0 : epochEnded);
    if (evalNow) {
      run.lastEvalStep = step;
      if (await evaluate()) {
        reason = 'early-stop';
        break;
      }
    }
    // RunProgress's rules: at an epoch's end a checkpoint comes after the next epoch's shuffle; the last step is written after the loop.
    if (epochEnded && step < totalSteps) {
      plan = planEpoch();
      checkpoint();
    } else if (!epochEnded && step < totalSteps && checkpointEveryMs > 0 && performance.now() - lastCheckpointAt >= checkpointEveryMs) {
      checkpoint();
    }
  }
  const step = run.step;
  if (reason === 'completed' && hasVal && run.lastEvalStep !== step) await evaluate();
  if (!hasVal) {
    best = cloneLora(params);
    saveAdapter(best, step);
  } else if (!best) {
    // Resumed after the best evaluation, or cancelled before any: keep what is on disk, else save now.
    if (!fs.existsSync(path.join(opts.outDir, ADAPTER_WEIGHTS_FILE))) saveAdapter(params, step);
    best = cloneLora(params);
  }
  checkpoint();
  const elapsedS = (performance.now() - t0) / 1000;
  const bestValLoss = hasVal ? early.bestLoss : null;
  emit({ type: 'done', reason, step, bestStep: savedStep, bestValLoss, outDir: opts.outDir, elapsedS });
  return { reason, step, savedStep, bestValLoss, params: best };
}
