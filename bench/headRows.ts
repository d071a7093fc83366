// The native LM head on several rows (NativeHead.logits, head.c's phase_logits) at int8 activations, the
// median of 5 calls per row count after one: what label scoring's runs cost in the head. The measurement
// behind logits_tile (pairs of table rows by four inputs); run it against an older build's binary to compare.
//   node --import tsx bench/headRows.ts [MODEL…] [--threads N] [--rows 4,16,64]
// MODEL defaults to bench/out/270m-q4.gguf and bench/out/270m-q4e4.gguf (see bench/trainStep.ts for how to make them).
import { openWeights } from '../src/engine/model/load';
import { NativeHead } from '../src/engine/gemma/nativeHead';
import { EMBED_NAME } from '../src/engine/model/weights';
import { flag } from './flags';

const models = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
const threads = Number(flag('threads', '2'));
const counts = flag('rows', '4,16,64').split(',').map(Number);

for (const file of models.length ? models : ['bench/out/270m-q4.gguf', 'bench/out/270m-q4e4.gguf']) {
  const source = openWeights(file, { precision: 'q4' }).source;
  const head = NativeHead.create(source, threads, 4);
  if (!(head instanceof NativeHead)) throw new Error(`${file}: ${head.reason}`);
  try {
    const C = source.config.hidden;
    for (const n of counts) {
      const rows = Float32Array.from({ length: n * C }, (_, i) => Math.sin(i) * 2);
      head.logits(rows, n);
      const ms: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t = performance.now();
        head.logits(rows, n);
        ms.push(performance.now() - t);
      }
      ms.sort((a, b) => a - b);
      console.log(`${file} (${source.storage(EMBED_NAME)} table) ${n} rows: median ${ms[2].toFixed(1)} ms`);
    }
  } finally {
    head.dispose();
  }
}
