// A second process for gemma-native.test.ts: one native run of many tokens on the model file, at int8
// activations, and the sha256 of its logits' bytes on stdout. The parent runs it with GEMMA_TUNE_NO_AVX512
// set, so that the AVX2 kernels' bits can be compared with the AVX-512 ones' in the same test run.
//   node --import tsx native-run-child.ts MODEL.gguf
import { createHash } from 'node:crypto';
import { openWeights } from '../../src/engine/model/load';
import { createGemmaRuntime } from '../../src/engine/gemma/ortRuntime';

const RUN_IDS = Array.from({ length: 40 }, (_, i) => 2 + ((i * 31) % 250));

/** The sha256 of the logits of one native run of RUN_IDS on `file`. */
async function runHash(file: string): Promise<string> {
  const { source } = openWeights(file, { precision: 'q4' });
  const rt = await createGemmaRuntime(source, { precision: 'q4', threads: 2, accuracyLevel: 4, decode: 'native' });
  try {
    const logits = await rt.step(rt.newCache(), RUN_IDS, { logits: 'all' });
    return createHash('sha256').update(new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength)).digest('hex');
  } finally {
    await rt.dispose();
  }
}

void runHash(process.argv[2]).then((h) => console.log(h));
