// What the finite check (src/engine/model/finite.ts) costs when a model loads: the time of the scan alone
// over every stored tensor (f32/f16/bf16 values, Q4_0/Q8_0 block scales) in the loader's 4 MiB chunks,
// beside a whole loadModel, which includes the same scan. The tensors are touched once before the scan
// is timed: the first read of freshly read pages costs the same whoever reads them first (the scan in
// loadModel, or the conversion into the runtime's weights without it), so it is not the scan's cost.
// Run on a 270M model made with make-model, e.g.
//
//   node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1 --out /tmp/270m-q4.gguf
//   node --import tsx bench/finite-scan.ts --model /tmp/270m-q4.gguf [--precision q4|f32] [--repeat 3]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { flag } from './flags';
import { findNonFinite } from '../src/engine/model/finite';
import { readGguf, readGgufTensor } from '../src/engine/model/gguf';
import type { TensorDtype } from '../src/engine/model/ggufFormat';
import { loadModel, type Precision } from '../src/engine/model/load';
import { readSafetensorsBytes, readSafetensorsHeader } from '../src/engine/model/safetensors';

const model = flag('model', '');
if (!model) throw new Error('--model PATH (a .gguf file or a Hugging Face folder) is required');
const precision = flag('precision', 'q4') as Precision;
const repeat = Number(flag('repeat', '3'));
/** The loader reads and checks tensors in chunks of about this many bytes (load.ts). */
const CHUNK_BYTES = 4 << 20;

/** Every stored tensor of the model as (dtype, raw bytes, value count). */
function* tensors(): Generator<{ dtype: TensorDtype; bytes: Uint8Array; n: number }> {
  if (fs.statSync(model).isDirectory()) {
    const st = readSafetensorsHeader(path.join(model, 'model.safetensors'));
    const dtypes: Record<string, TensorDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
    for (const [name, e] of st.entries) yield { dtype: dtypes[e.dtype], bytes: readSafetensorsBytes(st, name), n: e.shape.reduce((a, b) => a * b, 1) };
  } else {
    const g = readGguf(model);
    for (const t of g.tensors.values()) yield { dtype: t.dtype, bytes: readGgufTensor(g, t.name), n: t.ne.reduce((a, b) => a * b, 1) };
  }
}

let scanMs = Infinity, loadMs = Infinity, bytes = 0;
for (let r = 0; r < repeat; r++) {
  let ms = 0;
  bytes = 0;
  for (const t of tensors()) {
    let touched = 0;
    for (let i = 0; i < t.bytes.length; i += 4096) touched += t.bytes[i];
    if (touched < 0) throw new Error('unreachable');
    const valueBytes = t.bytes.byteLength / t.n;
    const chunk = Math.max(1, Math.floor(CHUNK_BYTES / valueBytes / 32)) * 32;
    const t0 = performance.now();
    for (let v = 0; v < t.n; v += chunk) {
      const n = Math.min(chunk, t.n - v);
      if (findNonFinite(t.dtype, t.bytes.subarray(v * valueBytes, (v + n) * valueBytes), n)) throw new Error('the model holds a non-finite number');
    }
    ms += performance.now() - t0;
    bytes += t.bytes.byteLength;
  }
  scanMs = Math.min(scanMs, ms);
  const t0 = performance.now();
  loadModel(model, { precision });
  loadMs = Math.min(loadMs, performance.now() - t0);
}
console.log(`${model}: ${(bytes / 2 ** 20).toFixed(0)} MiB stored`);
console.log(`finite scan alone: ${scanMs.toFixed(1)} ms (best of ${repeat})`);
console.log(`loadModel (${precision}), scan included: ${loadMs.toFixed(0)} ms (best of ${repeat}); the scan is ${((100 * scanMs) / loadMs).toFixed(1)}% of it`);
