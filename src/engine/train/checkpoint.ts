// A resumable snapshot of a run in one file (so it is written atomically as a whole): the current
// LoRA tensors, AdamW's moments, and as JSON metadata the step, the generator state, early-stopping
// state and the settings that must not change on resume. RunProgress is the run's state in memory,
// which the trainer advances and which saves and restores itself here, with the resume rules beside it. Every tensor is finite (and every second
// moment ≥ 0) when written and when read: a damaged checkpoint is refused by name, not resumed into NaN.

import * as fs from 'node:fs';
import type { AdamW, AdamWState } from './adamw';
import type { EarlyStopping, EarlyStopState } from './earlyStop';
import { Rng } from '../rng';
import type { TokenizedExample } from './tokenize';
import { emptyLora, peftTensorNames, type LoraParams, type LoraTarget } from './lora';
import type { GemmaConfig } from '../model/config';
import { NonFiniteError, requireFiniteF32 } from '../model/finite';
import { readSafetensorsHeader, readSafetensorsF32 } from '../model/safetensors';
import { bytesOf, writeSafetensorsStreaming, type SafetensorsTensorOut } from '../model/safetensorsWriter';
import { describeValue } from '../../common/quote';

export interface RunState {
  /** Optimizer steps done. */
  step: number;
  /** Completed epochs, and the next batch inside the current epoch. */
  epoch: number;
  batchInEpoch: number;
  /** The order of the current epoch (example ids), so a resumed epoch continues the same shuffle. */
  epochOrder: string[];
  rngState: number;
  earlyStop: EarlyStopState;
  /** The step of the latest evaluation (−1: none); absent in checkpoints written before it was kept. */
  lastEvalStep?: number;
  /** Settings fixed for the run: a resume with different ones is refused. */
  fingerprint: string;
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
}

/** Writes the run's state to `file` atomically. */
export function saveCheckpoint(file: string, params: LoraParams, opt: AdamWState, run: RunState): void {
  const tensors: SafetensorsTensorOut[] = [];
  const f32 = (name: string, shape: number[], data: Float32Array): SafetensorsTensorOut => {
    requireFiniteF32(file, name, data);
    return { name, dtype: 'F32', shape, data: bytesOf(data) };
  };
  params.modules.forEach((m, i) => {
    const n = peftTensorNames(m);
    const a = opt.slots[2 * i], b = opt.slots[2 * i + 1];
    const sa = [params.rank, m.inFeatures], sb = [m.outFeatures, params.rank];
    tensors.push(
      f32(n.a, sa, m.a), f32(`${n.a}.exp_avg`, sa, a.m), f32(`${n.a}.exp_avg_sq`, sa, a.v),
      f32(n.b, sb, m.b), f32(`${n.b}.exp_avg`, sb, b.m), f32(`${n.b}.exp_avg_sq`, sb, b.v),
    );
  });
  writeSafetensorsStreaming(file, tensors, { run: JSON.stringify(run), optimizer_step: String(opt.step) });
}

/** Reads a checkpoint written by saveCheckpoint for a model with config cfg. */
export function loadCheckpoint(file: string, cfg: GemmaConfig): { params: LoraParams; opt: AdamWState; run: RunState } {
  if (!fs.existsSync(file)) throw new Error(`${file}: no checkpoint to resume from`);
  const st = readSafetensorsHeader(file);
  let run: RunState;
  try {
    run = JSON.parse(st.metadata.run ?? '');
  } catch {
    throw new Error(`${file}: not a gemma-tune checkpoint (no run metadata)`);
  }
  const bad = runStateProblem(run);
  if (bad) throw new Error(`${file}: damaged checkpoint (${bad})`);
  const optStep = st.metadata.optimizer_step;
  if (optStep === undefined || !/^\d{1,10}$/.test(optStep) || Number(optStep) > 2 ** 31) {
    throw new Error(`${file}: damaged checkpoint (optimizer_step ${describeValue(optStep)} is not a step count)`);
  }
  const params = emptyLora(cfg, run.rank, run.alpha, run.targets, run.dropout);
  const slots: AdamWState['slots'] = [];
  for (const m of params.modules) {
    const n = peftTensorNames(m);
    for (const [name, buf] of [[n.a, m.a], [n.b, m.b]] as const) {
      const read = (k: string) => {
        const v = readSafetensorsF32(st, k);
        if (v.length !== buf.length) throw new Error(`${file}: ${k} has ${v.length} values, expected ${buf.length}`);
        requireFiniteF32(file, k, v);
        return v;
      };
      buf.set(read(name));
      const v = read(`${name}.exp_avg_sq`).slice();
      const negative = v.findIndex((x) => x < 0);
      if (negative >= 0) throw new NonFiniteError(`${file}: tensor ${name}.exp_avg_sq holds ${v[negative]} at value ${negative}: a second moment is never negative, the file is damaged`);
      slots.push({ m: read(`${name}.exp_avg`).slice(), v });
    }
  }
  return { params, opt: { step: Number(optStep), slots }, run };
}

/** What is wrong with run metadata read from a file, or null when it has RunState's shape. */
function runStateProblem(run: unknown): string | null {
  if (typeof run !== 'object' || run === null) return 'run metadata is not an object';
  const r = run as Record<string, unknown>;
  const count = (k: string) => Number.isInteger(r[k]) && (r[k] as number) >= 0;
  for (const k of ['step', 'epoch', 'batchInEpoch', 'rngState', 'rank']) if (!count(k)) return `${k} is not a non-negative integer`;
  if (typeof r.alpha !== 'number' || typeof r.dropout !== 'number') return 'alpha or dropout is not a number';
  if (!(r.alpha > 0 && Number.isFinite(r.alpha)) || !(r.dropout >= 0 && r.dropout < 1)) return `alpha ${r.alpha} or dropout ${r.dropout} is out of range`;
  if ((r.rank as number) < 1 || (r.rank as number) > 1024) return `rank ${r.rank} is outside 1…1024`;
  if (typeof r.fingerprint !== 'string') return 'no fingerprint';
  if (r.lastEvalStep !== undefined && !Number.isInteger(r.lastEvalStep)) return 'lastEvalStep is not an integer';
  if (!Array.isArray(r.epochOrder) || !r.epochOrder.every((id) => typeof id === 'string')) return 'epochOrder is not a list of example ids';
  if (!Array.isArray(r.targets) || !r.targets.every((t) => typeof t === 'string')) return 'targets is not a list';
  const es = r.earlyStop as Record<string, unknown> | null;
  if (typeof es !== 'object' || es === null || !Number.isInteger(es.bestStep) || !Number.isInteger(es.badEvals)) return 'early-stopping state is missing';
  return null;
}

/**
 * Where a run is: its step counters, the current epoch's order, the generator, and (owned by the trainer,
 * saved with them) the optimizer and early stopping. Everything a resume needs goes through save and
 * restore; the rules it keeps:
 * - Mid-epoch the order is this epoch's and the generator is past its shuffle, so a resume replans the
 *   same batches.
 * - At an epoch's end the order is dropped (endStep): the next epoch's is not drawn yet, so a checkpoint
 *   written then (the last step, an early stop) saves none, and a run resumed with more epochs shuffles
 *   as an uninterrupted one would. A checkpoint at batchInEpoch 0 mid-run is written only after the next
 *   epoch's shuffle (startEpoch), so the new order goes with it.
 * - lastEvalStep is saved, so that a run resumed at its last step does not evaluate it again.
 */
export class RunProgress {
  /** Optimizer steps done. */
  step = 0;
  /** Completed epochs, and the next batch inside the current epoch. */
  epoch = 0;
  batchInEpoch = 0;
  /** The step of the latest evaluation; −1: none. */
  lastEvalStep = -1;
  /** The current epoch's order; empty between an epoch's end and the next one's shuffle. */
  order: TokenizedExample[] = [];
  private rng: Rng;

  constructor(seed: number, readonly opt: AdamW, readonly early: EarlyStopping) {
    this.rng = new Rng(seed);
  }

  /** Draws the next epoch's order when none is current (a resumed epoch keeps the saved one); returns it. */
  startEpoch(examples: readonly TokenizedExample[], shuffle: (xs: readonly TokenizedExample[], rng: Rng) => TokenizedExample[]): TokenizedExample[] {
    if (this.order.length === 0) this.order = shuffle(examples, this.rng);
    return this.order;
  }

  /** Counts one optimizer step of an epoch of `batches` steps; true when it ended the epoch (whose order is then dropped). */
  endStep(batches: number): boolean {
    this.step += 1;
    this.batchInEpoch += 1;
    if (this.batchInEpoch < batches) return false;
    this.epoch += 1;
    this.batchInEpoch = 0;
    this.order = [];
    return true;
  }

  /** Writes the run with `params` to `file` atomically; `fingerprint` names what a resume must share. */
  save(file: string, params: LoraParams, fingerprint: string): void {
    saveCheckpoint(file, params, this.opt.state(), {
      step: this.step, epoch: this.epoch, batchInEpoch: this.batchInEpoch, epochOrder: this.order.map((e) => e.id), rngState: this.rng.state,
      earlyStop: this.early.state(), lastEvalStep: this.lastEvalStep, fingerprint,
      rank: params.rank, alpha: params.alpha, dropout: params.dropout, targets: params.targets,
    });
  }

  /**
   * Goes on from the run saved in `file`: its state here, its adapter into `params`. `refusal` says why a
   * checkpoint of another run (its fingerprint) cannot be resumed, or null; `examples` finds the saved order's ids.
   */
  restore(file: string, cfg: GemmaConfig, params: LoraParams, refusal: (fingerprint: string) => string | null, examples: ReadonlyMap<string, TokenizedExample>): void {
    const ck = loadCheckpoint(file, cfg);
    const why = refusal(ck.run.fingerprint);
    if (why) throw new Error(`${file}: the run was started with other data or settings; cannot resume (${why})`);
    if (ck.run.rank !== params.rank || ck.run.targets.join() !== params.targets.join()) throw new Error(`${file}: LoRA rank/targets differ from this run`);
    const order = ck.run.epochOrder.map((id) => examples.get(id));
    if (order.some((e) => e === undefined)) throw new Error(`${file}: damaged checkpoint (its epoch order names an example this run does not have)`);
    ck.params.modules.forEach((m, i) => { params.modules[i].a.set(m.a); params.modules[i].b.set(m.b); });
    this.opt.load(ck.opt);
    this.early.load(ck.run.earlyStop);
    this.rng = Rng.fromState(ck.run.rngState);
    ({ step: this.step, epoch: this.epoch, batchInEpoch: this.batchInEpoch } = ck.run);
    this.lastEvalStep = ck.run.lastEvalStep ?? -1;
    this.order = order as TokenizedExample[];
  }
}
