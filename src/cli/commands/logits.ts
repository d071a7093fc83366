// `gemma-tune logits`: the logits of every position of a token sequence, as little-endian float32
// [T, vocab], for exactness checks against other implementations.

import * as fs from 'node:fs';
import type { CliCommand } from '../command';
import { parseFlags, parseIds, required, UsageError } from '../args';
import { openWeights } from '../../engine/model/load';
import { createGemmaRuntime } from '../../engine/gemma/ortRuntime';
import { readPeftParams } from '../../engine/train/peftParams';
import { toRuntimeAdapter } from '../../engine/train/lora';
import { deviceFlag, precisionFlag, threadsFlag } from './modelFlags';

export const logitsCommand: CliCommand = {
  name: 'logits',
  usage: 'gemma-tune logits --model PATH [--adapter DIR] --tokens 2,651,… --out FILE [--precision q4|f32] [--threads auto|N] [--device auto|cpu|webgpu]',
  summary: 'Write the logits of every position as little-endian float32 [T, vocab].',
  async run(argv) {
    const p = parseFlags(argv, { values: ['model', 'adapter', 'tokens', 'out', 'precision', 'threads', 'device'] });
    const modelPath = required(p, 'model');
    const ids = parseIds(required(p, 'tokens'), 'tokens');
    const out = required(p, 'out');
    const precision = precisionFlag(p);
    const threads = threadsFlag(p);

    // Read on demand: the runtime streams the weights, the model is never held whole.
    const { source: weights } = openWeights(modelPath, { precision });
    const V = weights.config.vocabSize;
    const bad = ids.find((id) => id >= V);
    if (bad !== undefined) throw new UsageError(`--tokens: id ${bad} is outside the model's vocabulary of ${V}`);
    const adapterDir = p.values.get('adapter');
    const adapter = adapterDir !== undefined ? toRuntimeAdapter(readPeftParams(adapterDir, weights.config)) : null;

    const rt = await createGemmaRuntime(weights, { precision, threads, lora: adapter ? 'always' : 'never', device: (await deviceFlag(p)).inference });
    try {
      if (adapter) rt.setAdapter('cli', adapter);
      const logits = await rt.step(rt.newCache(), ids, { logits: 'all', adapter: adapter ? 'cli' : undefined });
      fs.writeFileSync(out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    } finally {
      await rt.dispose();
    }
  },
};
