// Training benchmark on a model file (default: the 270M shape with Q4_0 weights, made by
// `gemma-tune make-model --config 270m --format gguf --dtype q4_0 --seed 1 --out /tmp/m270.gguf`):
// tokens/s of training steps, the wall time of a 20-example × 3-epoch fine-tune with validation, peak RSS.
// --phases: wall and CPU seconds of each phase of the fine-tune (step session runs, gradient sums, AdamW,
// validation, checkpoints, …) and the cores kept busy overall (CPU s / wall s).
//   node --import tsx bench/train.ts MODEL [--threads N] [--precision q4|f32] [--rank R] [--epochs N] [--micro-batch M] [--phases] [--spin] [--engine auto|native|onnx] [--quiet]
import { benchTrain } from '../src/engine/train/benchTrain';
import { PhaseClock, phaseTable } from '../src/engine/train/phaseClock';

const [model, ...rest] = process.argv.slice(2);
if (!model) {
  console.error('usage: bench/train.ts MODEL [--threads N] [--precision q4|f32] [--rank R] [--epochs N] [--micro-batch M] [--phases] [--spin] [--quiet]');
  process.exit(2);
}
const flag = (n: string) => { const i = rest.indexOf(`--${n}`); return i >= 0 ? rest[i + 1] : undefined; };
const phases = rest.includes('--phases') ? new PhaseClock() : undefined;
benchTrain(model, {
  threads: Number(flag('threads') ?? 2),
  precision: (flag('precision') ?? 'q4') as 'q4' | 'f32',
  rank: Number(flag('rank') ?? 16),
  epochs: Number(flag('epochs') ?? 3),
  microBatch: Number(flag('micro-batch') ?? 2),
  spinning: rest.includes('--spin'),
  engine: (flag('engine') ?? 'auto') as 'auto' | 'native' | 'onnx',
  phases,
  onEvent: (e) => { if (!rest.includes('--quiet') && (e.type === 'step' || e.type === 'eval')) console.error(JSON.stringify(e)); },
}).then((r) => {
  console.log(JSON.stringify({ ...r, cores_busy: Math.round((r.finetune_cpu_s / r.finetune_s) * 100) / 100 }));
  if (phases) for (const line of phaseTable(phases, { wallS: r.finetune_s, cpuS: r.finetune_cpu_s })) console.log(line);
});
