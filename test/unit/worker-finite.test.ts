// The extension's path through the real engine (EngineClient and the bundled worker): a model with a NaN
// norm, a 1e9-layer header and an adapter holding Inf are refused by file and tensor, an overflowing model
// answers classify, generate and extract with "the model produced non-finite values" instead of a label,
// and an adapter name with escape bytes reaches the host's log escaped; the worker serves on after each.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { EngineClient } from '../../src/client/engineClient';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { initLora, peftTensorNames } from '../../src/engine/train/lora';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';
import { hasControls } from '../../src/common/quote';
import { f32Bytes, patchGgufU32, patchTensorBytes } from './damage-helpers';
import { tempDir } from './temp-helpers';
import { buildWorker, engineRejection } from './worker-helpers';

const tmp = tempDir('worker-finite-');
const good = path.join(tmp, 'good.gguf');
writeRandomGguf(good, GEMMA3_TINY, { seed: 2, dtype: 'q4_0' });
const copy = (name: string) => {
  const f = path.join(tmp, name);
  fs.copyFileSync(good, f);
  return f;
};
const nanNorm = copy('nan-norm.gguf');
patchTensorBytes(nanNorm, 'blk.0.post_attention_norm.weight', 0, f32Bytes(NaN));
const tallHeader = copy('tall.gguf');
patchGgufU32(tallHeader, 'gemma3.block_count', 1e9);
const overflowing = copy('overflow.gguf');
for (let i = 0; i < GEMMA3_TINY.hidden; i++) patchTensorBytes(overflowing, 'output_norm.weight', 4 * i, f32Bytes(3e38));

let engine: EngineClient;
const logs: string[] = [];
before(async () => {
  const keep = (s: string) => void logs.push(s);
  engine = new EngineClient({ workerPath: await buildWorker('worker-finite'), threads: 1, logger: { trace: keep, debug: keep, info: keep, warn: keep, error: keep } });
});
after(async () => {
  await engine.dispose();
});

test('a NaN norm and a 1e9-layer header are refused by the worker, which then loads a good model', async () => {
  let e = await engineRejection(engine.request('loadModel', { path: nanNorm }));
  assert.equal(e.code, 'failed');
  assert.match(e.message, /nan-norm\.gguf: tensor blk\.0\.post_attention_norm\.weight holds NaN at value 0: the file is damaged/);
  e = await engineRejection(engine.request('loadModel', { path: tallHeader }));
  assert.match(e.message, /tall\.gguf: gemma3\.block_count is 1000000000, outside the allowed 1…256/);
  assert.equal((await engine.request('loadModel', { path: good })).model.name, 'good.gguf');
});

test('an adapter holding Inf is refused naming the tensor; a name with escape bytes is logged escaped', async () => {
  await engine.request('loadModel', { path: good });
  const dir = path.join(tmp, 'adapter');
  writePeftAdapter(dir, initLora(GEMMA3_TINY, 4, 8, ['q'], 1));
  const weights = path.join(dir, 'adapter_model.safetensors');
  const e = await engineRejection(engine.request('loadAdapter', { name: 'task', path: dir }).then(() => {
    patchTensorBytes(weights, peftTensorNames({ layer: 2, target: 'q' }).a, 4, f32Bytes(-Infinity));
    return engine.request('loadAdapter', { name: 'task', path: dir });
  }));
  assert.match(e.message, /adapter_model\.safetensors: tensor base_model\.model\.model\.layers\.2\.self_attn\.q_proj\.lora_A\.weight holds -Infinity at value 1/);

  writePeftAdapter(dir, initLora(GEMMA3_TINY, 4, 8, ['q'], 1));
  await engine.request('loadAdapter', { name: 'evil\x1b[2J\u202e', path: dir });
  const line = logs.find((l) => l.includes('evil'));
  assert.ok(line && !hasControls(line) && line.includes('"evil\\u001b[2J\\u202e"'), `logged: ${JSON.stringify(line)}`);
});

test('on an overflowing model classify, generate and extract fail with "the model produced non-finite values"', async () => {
  await engine.request('loadModel', { path: overflowing });
  const messages = [{ role: 'user' as const, content: 'Bug or feature?' }];
  for (const request of [
    engine.request('classify', { messages, labels: ['bug', 'feature'] }),
    engine.request('generate', { messages, maxTokens: 3 }),
    engine.request('extract', { messages, fields: [{ name: 'kind' }], maxTokens: 16 }),
  ]) {
    const e = await engineRejection(request);
    assert.equal(e.code, 'failed');
    assert.match(e.message, /^the model produced non-finite values/);
  }
  assert.equal((await engine.request('status', {})).model?.name, 'overflow.gguf', 'the worker serves on');
});
