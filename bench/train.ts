// Training benchmark on a model file (default: the 270M shape with Q4_0 weights, made by
// `gemma-tune make-model --config 270m --format gguf --dtype q4_0 --seed 1 --out /tmp/m270.gguf`):
// tokens/s of training steps, the wall time of a 20-example × 3-epoch fine-tune with validation, peak RSS.
//   node --import tsx bench/train.ts MODEL [--threads N] [--precision q4|f32] [--rank R] [--epochs N] [--micro-batch M]
import { benchTrain } from '../src/engine/train/benchTrain';

const [model, ...rest] = process.argv.slice(2);
if (!model) {
  console.error('usage: bench/train.ts MODEL [--threads N] [--precision q4|f32] [--rank R] [--epochs N] [--micro-batch M]');
  process.exit(2);
}
const flag = (n: string) => { const i = rest.indexOf(`--${n}`); return i >= 0 ? rest[i + 1] : undefined; };
benchTrain(model, {
  threads: Number(flag('threads') ?? 2),
  precision: (flag('precision') ?? 'q4') as 'q4' | 'f32',
  rank: Number(flag('rank') ?? 16),
  epochs: Number(flag('epochs') ?? 3),
  microBatch: Number(flag('micro-batch') ?? 2),
  onEvent: (e) => { if (e.type === 'step' || e.type === 'eval') console.error(JSON.stringify(e)); },
}).then((r) => console.log(JSON.stringify(r)));
