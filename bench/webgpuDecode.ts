// Where a WebGPU decode step's time goes: prefill and decode timed run by run on one runtime per variant
// (ORT's default WebGPU validation, and validation off), each step's wall time split into the session run
// and the rest (embedding rows, masks, cache appends in JS).
// usage: node --import tsx bench/webgpuDecode.ts --model FILE.gguf [--steps 64] [--threads 8]

import { openWeights } from '../src/engine/model/load';
import { createGemmaRuntime } from '../src/engine/gemma/ortRuntime';
import { argmax } from '../src/engine/generate/sampling';
import { resolveDevice } from '../src/engine/onnx/device';
import { flag } from './flags';

async function main(): Promise<void> {
  const model = flag('model', '');
  if (!model) throw new Error('--model FILE.gguf is required');
  const steps = Number(flag('steps', '64'));
  const threads = Number(flag('threads', '8'));
  await resolveDevice('webgpu');
  for (const [name, webgpuOptions] of [['validation basic (default)', {}], ['validation disabled', { validationMode: 'disabled' }]] as const) {
    const rt = await createGemmaRuntime(openWeights(model, { precision: 'q4' }).source, { precision: 'q4', threads, device: 'webgpu', session: { webgpuOptions } });
    try {
      const V = rt.config.vocabSize;
      const lo = Math.min(1000, V >> 1);
      const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => lo + ((i * 7919 + salt * 104729) % (V - lo)));
      await rt.step(rt.newCache(), ids(8, 0), { logits: 'last' });
      let t = performance.now();
      await rt.step(rt.newCache(), ids(512, 1), { logits: 'last' });
      const prefill = performance.now() - t;
      const cache = rt.newCache();
      let logits = await rt.step(cache, ids(64, 2), { logits: 'last' });
      const times: number[] = [];
      for (let i = 0; i < steps; i++) {
        t = performance.now();
        logits = await rt.step(cache, [argmax(logits)], { logits: 'last' });
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      const median = times[times.length >> 1];
      console.log(`${name}: prefill 512 tokens ${prefill.toFixed(0)} ms (${((512 * 1000) / prefill).toFixed(0)} tokens/s); decode median ${median.toFixed(1)} ms/token (${(1000 / median).toFixed(1)} tokens/s), min ${times[0].toFixed(1)}, max ${times[times.length - 1].toFixed(1)}`);
    } finally {
      await rt.dispose();
    }
  }
}

main().catch((e) => {
  console.error(`webgpu decode: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
