// Where the runtime's time goes, by kernel: ORT's profile of a 512-token prefill (two runs of 256) and of
// decode steps after a 64-token prompt, on the real 270M shape with Q4_0 weights and 2 threads, summed by
// op and by (op, input shapes) per run. This is the evidence behind "decode reads the weights at memory
// bandwidth, prefill is MatMulNBits compute" (bench/membw.c measures the bandwidth to compare with).
// usage: node --import tsx bench/runtimeProfile.ts --model FILE.gguf [--decode 32] [--accuracy 0|4] [--threads N]
// Make the model with: node dist/cli.js make-model --config 270m --format gguf --dtype q4_0 --seed 1
//   --out bench/out/270m-q4.gguf

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openWeights } from '../src/engine/model/load';
import { createGemmaRuntime } from '../src/engine/gemma/ortRuntime';
import { profileIn, summariseProfile } from './ortProfile';
import { flag } from './flags';

async function main(): Promise<void> {
  const file = flag('model', '');
  if (!file) throw new Error('--model FILE.gguf is required (see the header for how to make one)');
  const decodeSteps = Number(flag('decode', '32'));
  const accuracyLevel = Number(flag('accuracy', '4')) as 0 | 4;
  const threads = Number(flag('threads', '2'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-runtime-profile-'));
  try {
    const { source } = openWeights(file, { precision: 'q4' });
    const rt = await createGemmaRuntime(source, { precision: 'q4', threads, accuracyLevel, session: { profilePrefix: path.join(dir, 'runtime') } });
    const V = rt.config.vocabSize;
    const ids = (n: number, salt: number) => Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + salt * 104729) % (V - 1000)));
    // Runs: 0 warm-up; 1–2 the prefill's two chunks; 3 the 64-token prompt; 4… the decode steps.
    await rt.step(rt.newCache(), ids(8, 0), { logits: 'last' });
    let t = performance.now();
    await rt.step(rt.newCache(), ids(512, 1), { logits: 'last' });
    const prefillMs = performance.now() - t;
    const cache = rt.newCache();
    await rt.step(cache, ids(64, 2), { logits: 'last' });
    t = performance.now();
    for (let i = 0; i < decodeSteps; i++) await rt.step(cache, [1000 + i], { logits: 'last' });
    const decodeMs = (performance.now() - t) / decodeSteps;
    await rt.dispose(); // releasing the session writes the profile
    const profile = profileIn(dir);
    if (!profile) throw new Error('ORT wrote no profile');
    console.log(`prefill 512 tokens: ${prefillMs.toFixed(0)} ms wall (profiled); decode: ${decodeMs.toFixed(2)} ms a step wall (profiled)`);
    for (const line of summariseProfile(profile, 1, 2)) console.log(line);
    for (const line of summariseProfile(profile, 4, 3 + decodeSteps)) console.log(line);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
