// The runtime's memory-saving paths compute exactly what the plain ones do, on real random-weight GGUF
// files: weights streamed from the file (openWeights) vs loaded whole (loadModel); the LM head split into
// vocabulary parts vs one MatMulNBits; the base graph without LoRA inputs, and its switch to the LoRA
// graph when an adapter is first used; a prompt and all labels scored in one run (scoreSequences) vs a
// step and one fork per label.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { loadModel, openWeights } from '../../src/engine/model/load';
import { rowCount } from '../../src/engine/model/weightSource';
import { createGemmaRuntime, type OrtRuntimeOptions } from '../../src/engine/gemma/ortRuntime';
import type { GemmaRuntime, LoraAdapter } from '../../src/engine/gemma/runtime';
import { targetShape, type LoraTarget } from '../../src/engine/train/lora';

// Vocabulary of 4096 so the head can be split into parts of 1024 rows.
const CFG: GemmaConfig = { ...GEMMA3_TINY, vocabSize: 4096 };
let dir: string;
const files: Record<'q8_0' | 'q4_0', string> = { q8_0: '', q4_0: '' };

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-stream-'));
  for (const embedding of ['q8_0', 'q4_0'] as const) {
    files[embedding] = path.join(dir, `m-${embedding}.gguf`);
    writeRandomGguf(files[embedding], CFG, { seed: 3, dtype: 'q4_0', embedding });
  }
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const PROMPT = [2, 105, 300, 1200, 3000, 77, 4095, 301, 302, 303, 2222, 106];

async function logitsAll(rt: GemmaRuntime, ids: number[], adapter?: string): Promise<Float32Array> {
  const c = rt.newCache();
  try {
    return await rt.step(c, ids, { logits: 'all', adapter });
  } finally {
    c.dispose();
  }
}

function assertSame(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i} is ${a[i]} vs ${b[i]}`);
}

test('openWeights reads the same rows, in any range, as loadModel holds', () => {
  const whole = loadModel(files.q8_0, { precision: 'q4' }).weights;
  const lazy = openWeights(files.q8_0, { precision: 'q4' }).source;
  for (const name of ['model.embed_tokens.weight', 'model.layers.1.mlp.down_proj.weight', 'model.norm.weight']) {
    const w = whole.weights.get(name)!;
    assert.deepEqual(lazy.shape(name), w.shape);
    assert.equal(lazy.storage(name), w.value.type);
    const n = rowCount(w.shape);
    const all = lazy.rows(name, 0, n);
    assert.deepEqual(Array.from(all.data), Array.from(w.value.data));
    if (n > 3) {
      const part = lazy.rows(name, 1, 2);
      const per = all.data.length / n;
      assert.deepEqual(Array.from(part.data), Array.from(all.data.subarray(per, 3 * per)));
    }
  }
  assert.throws(() => lazy.rows('model.norm.weight', 0, 2), /outside/);
  assert.throws(() => lazy.shape('model.layers.9.mlp.up_proj.weight'), /no weight/);
});

for (const embedding of ['q8_0', 'q4_0'] as const) {
  test(`${embedding} embedding: streamed weights and a head in 4 parts give the same logits as loaded weights and one head`, async () => {
    for (const accuracyLevel of [0, 4] as const) {
      const base: OrtRuntimeOptions = { precision: 'q4', threads: 1, accuracyLevel, lora: 'never' };
      const a = await createGemmaRuntime(loadModel(files[embedding], { precision: 'q4' }).weights, { ...base, headParts: 1 });
      const b = await createGemmaRuntime(openWeights(files[embedding], { precision: 'q4' }).source, { ...base, headParts: 4 });
      try {
        assertSame(await logitsAll(b, PROMPT), await logitsAll(a, PROMPT), `acc${accuracyLevel}`);
      } finally {
        await a.dispose();
        await b.dispose();
      }
    }
  });
}

/** A random rank-2 adapter on q, v and down of every layer. */
function randomAdapter(cfg: GemmaConfig): LoraAdapter {
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2;
  const modules = new Map<string, { a: Float32Array; b: Float32Array }>();
  const R = 2;
  for (let i = 0; i < cfg.layers; i++) {
    for (const t of ['q', 'v', 'down'] as LoraTarget[]) {
      const [out, inp] = targetShape(cfg, t);
      const kind = t === 'down' ? 'mlp.down_proj' : `self_attn.${t}_proj`;
      modules.set(`model.layers.${i}.${kind}`, { a: Float32Array.from({ length: R * inp }, rnd), b: Float32Array.from({ length: out * R }, rnd) });
    }
  }
  return { rank: R, alpha: 4, modules };
}

test('lazy LoRA: the base graph matches the LoRA graph at rank 0, and the first adapter step switches to it', async () => {
  const opts: OrtRuntimeOptions = { precision: 'q4', threads: 1, accuracyLevel: 0 };
  const always = await createGemmaRuntime(openWeights(files.q4_0, { precision: 'q4' }).source, { ...opts, lora: 'always' });
  const lazy = await createGemmaRuntime(openWeights(files.q4_0, { precision: 'q4' }).source, { ...opts, lora: 'lazy' });
  try {
    const adapter = randomAdapter(CFG);
    always.setAdapter('x', adapter);
    lazy.setAdapter('x', adapter);
    const base = await logitsAll(always, PROMPT);
    const d = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
    assert.ok(d(await logitsAll(lazy, PROMPT), base) <= 1e-5, 'base graph vs rank-0 LoRA graph');
    // A cache filled before the switch keeps working after it.
    const cache = lazy.newCache();
    await lazy.step(cache, PROMPT.slice(0, 6), { logits: 'last' });
    const withAdapter = await logitsAll(lazy, PROMPT, 'x');
    assertSame(withAdapter, await logitsAll(always, PROMPT, 'x'), 'adapter logits');
    assert.ok(d(withAdapter, base) > 1e-3, 'the adapter changes the logits');
    const next = await lazy.step(cache, PROMPT.slice(6), { logits: 'all' });
    assert.ok(d(next, base.subarray(6 * CFG.vocabSize)) <= 1e-5, 'cache from before the switch');
    assert.ok(d(await logitsAll(lazy, PROMPT), base) <= 1e-5, 'base after the switch');
  } finally {
    await always.dispose();
    await lazy.dispose();
  }
  const never = await createGemmaRuntime(openWeights(files.q4_0, { precision: 'q4' }).source, { ...opts, lora: 'never' });
  assert.throws(() => never.setAdapter('x', randomAdapter(CFG)), /without LoRA/);
  await never.dispose();
});

test('scoreSequences: a prefix and every sequence in one run equal a step and one fork + step per sequence', async () => {
  const rt = await createGemmaRuntime(openWeights(files.q8_0, { precision: 'f32' }).source, { precision: 'f32', threads: 1 });
  const V = CFG.vocabSize;
  /** log softmax of row `row` of a [T, V] block at id, in float64. */
  const logProbAt = (logits: Float32Array, row: number, id: number) => {
    const x = Array.from(logits.subarray(row * V, (row + 1) * V));
    const max = x.reduce((m, v) => Math.max(m, v), -Infinity);
    return x[id] - max - Math.log(x.reduce((s, v) => s + Math.exp(v - max), 0));
  };
  try {
    const sequences = [[300], [300, 301, 302], [7], [4000, 12, 13, 14, 15, 16], [301, 300]];
    // Cache past the sliding window (4), so the window rules apply across the prompt/sequence boundary too.
    const ref = rt.newCache();
    const refLast = await rt.step(ref, PROMPT, { logits: 'last' });
    for (const split of [0, 5, PROMPT.length - 1]) {
      // `split` prompt ids already in the cache, the rest passed as the prefix.
      const cache = rt.newCache();
      if (split) await rt.step(cache, PROMPT.slice(0, split), { logits: 'last' });
      const got = await rt.scoreSequences!(cache, sequences, { prefix: PROMPT.slice(split) });
      assert.equal(cache.length, PROMPT.length, 'the prefix joins the cache, the sequences do not');
      for (const [i, s] of sequences.entries()) {
        const want = [logProbAt(refLast, 0, s[0])];
        if (s.length > 1) {
          const fork = ref.fork();
          const logits = await rt.step(fork, s.slice(0, -1), { logits: 'all' });
          fork.dispose();
          for (let k = 1; k < s.length; k++) want.push(logProbAt(logits, k - 1, s[k]));
        }
        assert.equal(got[i].length, s.length);
        const d = got[i].reduce((m, v, k) => Math.max(m, Math.abs(v - want[k])), 0);
        assert.ok(d <= 1e-4, `split ${split}, sequence ${i}: max|Δ| ${d}`);
      }
      // The cache continues as if only the prefix had been stepped.
      const next = await rt.step(cache, [300], { logits: 'last' });
      const fork = ref.fork();
      const ahead = await rt.step(fork, [300], { logits: 'last' });
      assert.ok(next.reduce((m, v, k) => Math.max(m, Math.abs(v - ahead[k])), 0) <= 1e-4, `split ${split}: cache after`);
      fork.dispose();
      cache.dispose();
    }
    await assert.rejects(rt.scoreSequences!(rt.newCache(), sequences, { prefix: [] }), /no prefix ids/);
    await assert.rejects(rt.scoreSequences!(rt.newCache(), [[300], []], { prefix: [2] }), /a sequence has no ids/);
    await assert.rejects(rt.scoreSequences!(rt.newCache(), [[300, V]], { prefix: [2] }), /outside the vocabulary/);
    ref.dispose();
  } finally {
    await rt.dispose();
  }
});

test('headBits 4 (opt-in) runs the head of a Q8_0 embedding in 4 bits: logits move a little, lookups stay exact; the default is the stored head', async () => {
  const opts: OrtRuntimeOptions = { precision: 'q4', threads: 1, accuracyLevel: 0, lora: 'never' };
  const exact = await createGemmaRuntime(openWeights(files.q8_0, { precision: 'q4' }).source, opts);
  const four = await createGemmaRuntime(openWeights(files.q8_0, { precision: 'q4' }).source, { ...opts, headBits: 4 });
  try {
    const a = await logitsAll(exact, PROMPT);
    const b = await logitsAll(four, PROMPT);
    const scale = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const d = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    assert.ok(d > 0 && d < 0.2 * scale, `max|Δ| ${d} against logits up to ${scale}`);
  } finally {
    await exact.dispose();
    await four.dispose();
  }
});
