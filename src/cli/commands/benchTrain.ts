// `gemma-tune bench --train`: the training benchmark of issue 4 (a 20-example × 3-epoch fine-tune of
// synthetic 120-token examples with 40 completion tokens, validation on, r16 on all seven projections)
// printing training tokens/s, the fine-tune's wall time and peak RSS (--json: one object).

import { numberFlag, required, UsageError, type ParsedArgs } from '../args';
import { benchTrain } from '../../engine/train/benchTrain';

/** Runs the training benchmark for `gemma-tune bench --train`. */
export async function runTrainBench(flags: ParsedArgs, json: boolean): Promise<void> {
  const precision = flags.values.get('precision') ?? 'q4';
  if (precision !== 'q4' && precision !== 'f32') throw new UsageError(`--precision must be q4 or f32, got "${precision}"`);
  const r = await benchTrain(required(flags, 'model'), { precision, threads: numberFlag(flags, 'threads', 2, 1, 256, true) });
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  if (json) {
    process.stdout.write(JSON.stringify({ train_tok_s: round(r.train_tok_s), finetune_s: round(r.finetune_s), peak_rss_mb: round(r.peak_rss_mb), setup_s: round(r.setup_s), finetune_cpu_s: round(r.finetune_cpu_s), steps: r.steps }) + '\n');
  } else {
    process.stdout.write([
      `training: ${r.train_tok_s.toFixed(1)} tokens/s (forward + backward + AdamW, ${r.steps} steps of 4 × 120 tokens as 2 micro-batches of 2, ${r.step_s_mean.toFixed(2)} s/step)`,
      `fine-tune: 20 examples × 3 epochs with validation in ${r.finetune_s.toFixed(1)} s (+ ${r.setup_s.toFixed(1)} s to load the model and build the step graph)`,
      `CPU time of the fine-tune: ${r.finetune_cpu_s.toFixed(1)} s (all threads; on a busy machine CPU time / threads estimates the idle wall time)`,
      `peak RSS: ${r.peak_rss_mb.toFixed(0)} MB`,
    ].join('\n') + '\n');
  }
}
