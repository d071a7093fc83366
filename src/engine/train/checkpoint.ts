// A resumable snapshot of a run in one file (so it is written atomically as a whole): the current
// LoRA tensors, AdamW's moments, and as JSON metadata the step, the generator state, early-stopping
// state and the settings that must not change on resume. Every tensor is finite (and every second
// moment ≥ 0) when written and when read: a damaged checkpoint is refused by name, not resumed into NaN.

import * as fs from 'node:fs';
import type { AdamWState } from './adamw';
import type { EarlyStopState } from './earlyStop';
import { emptyLora, peftTensorNames, type LoraParams, type LoraTarget } from './lora';
import type { GemmaConfig } from '../model/config';
import { NonFiniteError, requireFiniteF32 } from '../model/finite';
import { readSafetensorsHeader, readSafetensorsF32 } from '../model/safetensors';
import { bytesOf, writeSafetensorsStreaming, type SafetensorsTensorOut } from '../model/safetensorsWriter';
import { describeValue } from '../../protocol/quote';

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
