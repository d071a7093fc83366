// A second process for gemma-native.test.ts: creates, runs and disposes `count` decoders on the model
// file, then prints "done". A thread-start race makes a run wait forever; the parent's timeout then
// fails the test instead of hanging the test run.
//   node --import tsx native-threads-child.ts MODEL.gguf COUNT
import { openWeights } from '../../src/engine/model/load';
import { GemmaKvCache } from '../../src/engine/gemma/kvCache';
import { NativeDecoder } from '../../src/engine/gemma/nativeDecoder';

const [file, count] = process.argv.slice(2);
const { source } = openWeights(file, { precision: 'q4' });
const cfg = source.config;
const x = new Float32Array(cfg.hidden).fill(0.5);
const rope = () => ({ cos: new Float32Array(cfg.headDim / 2).fill(1), sin: new Float32Array(cfg.headDim / 2) });
for (let i = 0; i < Number(count); i++) {
  const d = NativeDecoder.create(source, 2 + (i % 3), 4);
  if (!(d instanceof NativeDecoder)) throw new Error(d.reason);
  const cache = new GemmaKvCache({}, cfg);
  d.run(cache, x, [0], null, cache.plan(1, 1), rope);
  d.dispose();
}
console.log('done');
