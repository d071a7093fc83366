// The whole f32 forward against Hugging Face transformers on the fixtures: every position's logits and
// every hidden state (embedding, each layer, final norm), on tiny and on mini-270m-shape.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { loadModel } from '../../src/engine/model/load';
import { inferenceGraph } from '../../src/engine/gemma/inferenceGraph';
import { createSession, f32Tensor, ort } from '../../src/engine/onnx/session';
import { inverseFrequencies, ropeTables } from '../../src/engine/gemma/rope';
import { fixtureRuntime, readRef, maxAbsDiff } from './gemma-helpers';
import { hfFixture } from './shared-dir';

for (const name of ['tiny', 'mini-270m-shape']) {
  test(`f32 logits of every position match HF (${name})`, async () => {
    const { dir, weights, rt } = await fixtureRuntime(name);
    const ref = readRef(dir);
    const [B, T] = ref.idsShape;
    const V = weights.config.vocabSize;
    let worst = 0;
    for (let b = 0; b < B; b++) {
      const ids = Array.from(ref.ids.subarray(b * T, (b + 1) * T));
      const got = await rt.step(rt.newCache(), ids, { logits: 'all' });
      worst = Math.max(worst, maxAbsDiff(got, ref.logits.subarray(b * T * V, (b + 1) * T * V)));
    }
    await rt.dispose();
    console.log(`${name}: f32 logits max|Δ| = ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4, `max|Δ| ${worst}`);
  });

  test(`f32 hidden states match HF output_hidden_states (${name})`, async () => {
    const dir = hfFixture(name);
    const ref = readRef(dir);
    const { weights } = loadModel(dir, { precision: 'f32' });
    const cfg = weights.config;
    const session = await createSession(inferenceGraph(weights, { precision: 'f32', accuracyLevel: 0, lora: false, debugHidden: true }).build(), { threads: 1 });
    const [, T] = ref.idsShape;
    const ids = Array.from(ref.ids.subarray(0, T));
    const pos = Array.from({ length: T }, (_, i) => i);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, T]),
      rope_pos: new ort.Tensor('int64', BigInt64Array.from(pos, BigInt), [1, T]),
      logit_index: new ort.Tensor('int64', BigInt64Array.from([BigInt(T - 1)]), [1]),
    };
    for (const type of ['sliding', 'full'] as const) {
      const { cos, sin } = ropeTables(inverseFrequencies(cfg.headDim, type === 'full' ? cfg.ropeThetaGlobal : cfg.ropeThetaLocal), pos);
      const W = type === 'sliding' ? cfg.slidingWindow : Infinity;
      const mask = new Float32Array(T * T).map((_, k) => { const d = Math.floor(k / T) - (k % T); return d >= 0 && d < W ? 0 : -Infinity; });
      Object.assign(feeds, {
        [`cos_${type}`]: f32Tensor(cos, [T, cfg.headDim / 2]), [`sin_${type}`]: f32Tensor(sin, [T, cfg.headDim / 2]),
        [`mask_${type}`]: f32Tensor(mask, [1, 1, T, T]), [`split_${type}`]: new ort.Tensor('int64', BigInt64Array.from([0n, BigInt(T)]), [2]),
      });
    }
    for (let i = 0; i < cfg.layers; i++) {
      feeds[`past_k_${i}`] = f32Tensor(new Float32Array(0), [1, cfg.kvHeads, 0, cfg.headDim]);
      feeds[`past_v_${i}`] = f32Tensor(new Float32Array(0), [1, cfg.kvHeads, 0, cfg.headDim]);
    }
    const r = await session.run(feeds);
    const C = cfg.hidden;
    const [, Bh] = ref.hiddenShape;
    for (let l = 0; l <= cfg.layers; l++) {
      const want = ref.hidden.subarray((l * Bh) * T * C, (l * Bh + 1) * T * C);
      const d = maxAbsDiff(r[`hidden_${l}`].data as Float32Array, want);
      assert.ok(d <= 1e-4, `hidden_${l} max|Δ| ${d}`);
    }
    await session.release();
  });
}
