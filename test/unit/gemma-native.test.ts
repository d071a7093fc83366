// The native decode step and head (native/, nativeDecoder.ts, nativeHead.ts) against ONNX Runtime's graphs
// on the same Q4_0 files: float activations (accuracy_level 0) to float rounding, int8 activations (level 4)
// as close to the exact logits as ONNX Runtime's level 4; one thread or several give the same bits; the
// sliding window's ring wraps; weights mapped from the file or read give the same logits; bad calls throw.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { loadModel, openWeights } from '../../src/engine/model/load';
import type { WeightSource } from '../../src/engine/model/weightSource';
import type { ModelWeights } from '../../src/engine/model/weights';
import { createGemmaRuntime } from '../../src/engine/gemma/ortRuntime';
import { GemmaKvCache } from '../../src/engine/gemma/kvCache';
import { NativeDecoder } from '../../src/engine/gemma/nativeDecoder';
import { NativeHead } from '../../src/engine/gemma/nativeHead';
import { nativeModule } from '../../src/engine/gemma/nativeModule';
import type { GemmaRuntime, KvCache, LoraAdapter, StepOptions } from '../../src/engine/gemma/runtime';
import { openModel } from '../../src/engine/generate/openModel';
import { generate } from '../../src/engine/generate/generator';
import { extract } from '../../src/engine/generate/constrained';
import { targetShape, type LoraTarget } from '../../src/engine/model/loraTargets';
import { modulePath } from '../../src/engine/train/lora';
import { Rng } from '../../src/engine/rng';
import { maxAbsDiff } from './gemma-helpers';
import { tempDir } from './temp-helpers';

const dir = tempDir('gemma-native-');
/** Four heads over two kv heads (grouped queries), window 4: twenty steps wrap the sliding layers' ring. */
const GQA: GemmaConfig = { ...GEMMA3_TINY, heads: 4, kvHeads: 2 };

/** The random Q4_0 model `name` of cfg, written once per file and shared by the tests. */
function model(name: string, cfg: GemmaConfig, embedding: 'q4_0' | 'q8_0', seed = 3): string {
  const file = path.join(dir, `${name}-${embedding}-${seed}.gguf`);
  if (!fs.existsSync(file)) writeRandomGguf(file, cfg, { seed, dtype: 'q4_0', embedding });
  return file;
}

const PROMPT = [2, 10, 20, 30, 40];
const STEPS = Array.from({ length: 20 }, (_, t) => 50 + 7 * t);

/**
 * A LoRA adapter of rank 4 on some projections of some layers (so that groups are whole, partial — zero
 * rows in the block-diagonal B — or absent), random values large enough to move the logits.
 */
function someAdapter(cfg: GemmaConfig, seed: number): LoraAdapter {
  const rng = new Rng(seed);
  const R = 4;
  const modules = new Map<string, { a: Float32Array; b: Float32Array }>();
  const random = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 0.4 - 0.2);
  const chosen: Record<number, LoraTarget[]> = { 0: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], 1: ['q', 'v', 'down'], 3: ['o', 'up'], 5: ['k', 'gate'] };
  for (const [layer, targets] of Object.entries(chosen)) {
    for (const t of targets) {
      const [out, inp] = targetShape(cfg, t);
      modules.set(modulePath({ layer: Number(layer), target: t }), { a: random(R * inp), b: random(out * R) });
    }
  }
  return { rank: R, alpha: 8, modules };
}

/**
 * The logits of PROMPT then each of STEPS one at a time, on a fresh runtime of `weights`; with `adapter`,
 * every other step runs with it (adapters are chosen per step on one cache).
 */
async function decodeLogits(weights: WeightSource | ModelWeights, opts: { level: 0 | 4; decode: 'native' | 'onnx'; threads?: number; headLevel?: 0 | 4; adapter?: LoraAdapter }): Promise<{ steps: Float32Array[]; note: string; cache: GemmaKvCache }> {
  const rt = await createGemmaRuntime(weights, { precision: 'q4', threads: opts.threads ?? 2, accuracyLevel: opts.level, headAccuracyLevel: opts.headLevel, decode: opts.decode });
  try {
    if (opts.adapter) rt.setAdapter('task', opts.adapter);
    const cache = rt.newCache() as GemmaKvCache;
    const steps = [await rt.step(cache, PROMPT, { logits: 'last' })];
    for (const [t, id] of STEPS.entries()) steps.push(await rt.step(cache, [id], { logits: 'last', adapter: opts.adapter && t % 2 === 0 ? 'task' : undefined }));
    return { steps, note: rt.decodeBy.note, cache };
  } finally {
    await rt.dispose();
  }
}

function worst(a: Float32Array[], b: Float32Array[]): number {
  return a.reduce((m, x, i) => Math.max(m, maxAbsDiff(x, b[i])), 0);
}

test('the native binary is built and runs on this CPU', () => {
  const m = nativeModule();
  assert.ok('module' in m, `no native module: ${'reason' in m ? m.reason : ''}`);
});

for (const [name, cfg] of [['tiny', GEMMA3_TINY], ['gqa', GQA]] as const) {
  for (const embedding of ['q8_0', 'q4_0'] as const) {
    test(`native decode equals ONNX Runtime's with float activations (${name}, ${embedding} embedding)`, async () => {
      const { source } = openWeights(model(name, cfg, embedding), { precision: 'q4' });
      const native = await decodeLogits(source, { level: 0, decode: 'native' });
      const onnx = await decodeLogits(source, { level: 0, decode: 'onnx' });
      assert.equal(native.note, 'layers native, head native');
      assert.equal(onnx.note, 'layers ONNX Runtime (chosen), head ONNX Runtime (chosen)');
      const d = worst(native.steps, onnx.steps);
      console.log(`${name} ${embedding}: native vs ONNX Runtime decode max|Δ| = ${d.toExponential(2)}`);
      assert.ok(d <= 1e-4, `max|Δ| ${d}`);
      // The keys and values the native step wrote into the cache are the graph's.
      for (const [type, set] of native.cache.sets) {
        const other = onnx.cache.sets.get(type)!;
        assert.deepEqual(Array.from(set.positions.subarray(0, set.filled)), Array.from(other.positions.subarray(0, other.filled)));
        set.k.forEach((k, l) => assert.ok(maxAbsDiff(k.subarray(0, set.filled * cfg.kvHeads * cfg.headDim), other.k[l].subarray(0, set.filled * cfg.kvHeads * cfg.headDim)) <= 1e-4));
      }
      // The ring wrapped: more steps than the window, and the sliding layers kept W-1 of them.
      assert.equal(native.cache.sets.get('sliding')!.filled, cfg.slidingWindow - 1);
    });
  }
}

test('native decode with a LoRA adapter equals ONNX Runtime\'s, and the adapter changes the answer', async () => {
  const { source } = openWeights(model('gqa', GQA, 'q8_0'), { precision: 'q4' });
  const adapter = someAdapter(GQA, 9);
  const native = await decodeLogits(source, { level: 0, decode: 'native', adapter });
  const onnx = await decodeLogits(source, { level: 0, decode: 'onnx', adapter });
  const base = await decodeLogits(source, { level: 0, decode: 'native' });
  const d = worst(native.steps, onnx.steps);
  console.log(`LoRA decode: native vs ONNX Runtime max|Δ| = ${d.toExponential(2)}; adapter vs base ${worst(native.steps, base.steps).toExponential(2)}`);
  assert.ok(d <= 1e-4, `max|Δ| ${d}`);
  assert.ok(worst(native.steps, base.steps) > 1e-2, 'the adapter moved the logits');
  // An adapter set again under the same name replaces the native copy too.
  const rt = await createGemmaRuntime(source, { precision: 'q4', threads: 2, accuracyLevel: 0, decode: 'native' });
  rt.setAdapter('task', adapter);
  const first = await rt.step(rt.newCache(), [7], { logits: 'last', adapter: 'task' });
  rt.setAdapter('task', someAdapter(GQA, 10));
  const second = await rt.step(rt.newCache(), [7], { logits: 'last', adapter: 'task' });
  assert.ok(maxAbsDiff(first, second) > 1e-3);
  rt.removeAdapter('task');
  await assert.rejects(rt.step(rt.newCache(), [7], { logits: 'last', adapter: 'task' }), /no adapter named "task"/);
  await rt.dispose();
});

test('with int8 activations, native decode is as close to the exact logits as ONNX Runtime\'s', async () => {
  for (const seed of [3, 5]) {
    const { source } = openWeights(model('gqa', GQA, 'q8_0', seed), { precision: 'q4' });
    const exact = await decodeLogits(source, { level: 0, headLevel: 0, decode: 'onnx' });
    const native = await decodeLogits(source, { level: 4, decode: 'native' });
    const onnx = await decodeLogits(source, { level: 4, decode: 'onnx' });
    const dn = worst(native.steps, exact.steps), dx = worst(onnx.steps, exact.steps);
    console.log(`seed ${seed}: level 4 vs exact max|Δ|: native ${dn.toExponential(2)}, ONNX Runtime ${dx.toExponential(2)}`);
    assert.ok(dn <= 1.5 * dx + 1e-3, `native ${dn} against ONNX Runtime's ${dx}`);
  }
});

test('a run of many tokens gives each token the bits of one step at a time, with and without an adapter', async () => {
  // A window wider than the input: a ring that wraps orders its slots otherwise, and the softmax's sum with them.
  const { source } = openWeights(model('gqa-wide', { ...GQA, slidingWindow: 32 }, 'q4_0'), { precision: 'q4' });
  const ids = [2, ...STEPS, 11, 12, 13];
  for (const level of [0, 4] as const) {
    for (const adapter of [undefined, someAdapter(GQA, 9)]) {
      const rt = await createGemmaRuntime(source, { precision: 'q4', threads: 2, accuracyLevel: level, decode: 'native' });
      try {
        if (adapter) rt.setAdapter('task', adapter);
        const name = adapter ? 'task' : undefined;
        const whole = rt.newCache() as GemmaKvCache;
        const all = await rt.step(whole, ids, { logits: 'all', adapter: name });
        const one = rt.newCache() as GemmaKvCache;
        const V = GQA.vocabSize;
        for (const [t, id] of ids.entries()) {
          const step = await rt.step(one, [id], { logits: 'last', adapter: name });
          const row = all.subarray(t * V, (t + 1) * V);
          for (let v = 0; v < V; v++) assert.ok(Object.is(step[v], row[v]), `level ${level}${name ? ' adapter' : ''}: token ${t} logit ${v}: ${step[v]} one at a time, ${row[v]} in one run`);
        }
        for (const [type, set] of whole.sets) {
          const other = one.sets.get(type)!;
          assert.equal(set.filled, other.filled);
          set.k.forEach((k, l) => assert.deepEqual(k, other.k[l], `${type} layer ${l}'s keys`));
        }
      } finally {
        await rt.dispose();
      }
    }
  }
});

test('the AVX2 kernels give the AVX-512 ones\' bits (where this CPU has AVX-512 VNNI; else both runs are AVX2)', () => {
  const file = model('gqa-wide', { ...GQA, slidingWindow: 32 }, 'q4_0');
  const child = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'native-run-child.ts'), file], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  const wide = child({}), narrow = child({ GEMMA_TUNE_NO_AVX512: '1' });
  assert.match(wide, /^[0-9a-f]{64}$/);
  assert.equal(narrow, wide);
});

test('native runs split a long input at the runtime\'s limit, and score sequences as ONNX Runtime does', async () => {
  const { source } = openWeights(model('gqa', GQA, 'q8_0'), { precision: 'q4' });
  const ids = [2, ...STEPS, 11, 12, 13];
  const adapter = someAdapter(GQA, 9);
  const open = async (decode: 'native' | 'onnx', maxChunk?: number) => {
    const rt = await createGemmaRuntime(source, { precision: 'q4', threads: 2, accuracyLevel: 0, decode, maxChunk });
    rt.setAdapter('task', adapter);
    return rt;
  };
  const native = await open('native'), pieces = await open('native', 5), onnx = await open('onnx');
  try {
    const V = GQA.vocabSize;
    const whole = await native.step(native.newCache(), ids, { logits: 'all' });
    const cut = await pieces.step(pieces.newCache(), ids, { logits: 'all' });
    assert.equal(cut.length, ids.length * V);
    assert.ok(maxAbsDiff(whole, cut) <= 1e-5, `in runs of 5: max|Δ| ${maxAbsDiff(whole, cut)}`);
    const last = await pieces.step(pieces.newCache(), ids, { logits: 'last' });
    assert.ok(maxAbsDiff(last, whole.subarray((ids.length - 1) * V)) <= 1e-5);
    for (const adapterName of [undefined, 'task']) {
      const sequences = [[40, 41, 42, 46], [43], [44, 45, 47]];
      const prefix = [2, 10, 20, 30];
      const score = async (rt: GemmaRuntime) => {
        const cache = rt.newCache();
        await rt.step(cache, [2, 9], { logits: 'last' });
        return rt.scoreSequences!(cache, sequences, { prefix, adapter: adapterName });
      };
      const worstOf = (x: number[][], y: number[][]) => x.reduce((m, row, i) => row.reduce((mm, v, k) => Math.max(mm, Math.abs(v - y[i][k])), m), 0);
      const a = await score(native), b = await score(onnx);
      assert.deepEqual(a.map((r) => r.length), [4, 1, 3]);
      assert.ok(worstOf(a, b) <= 1e-4, `log-probs${adapterName ? ' with the adapter' : ''}: max|Δ| ${worstOf(a, b)}`);
      // Sequences too long for one run go one by one, and agree.
      const c = await score(pieces);
      assert.ok(worstOf(c, b) <= 1e-4, `log-probs in pieces: max|Δ| ${worstOf(c, b)}`);
    }
  } finally {
    await Promise.all([native.dispose(), pieces.dispose(), onnx.dispose()]);
  }
});

test('rows past what the native head takes go to ONNX Runtime\'s head, opened when first needed, with or without a cache', async () => {
  const { source } = openWeights(model('tiny', GEMMA3_TINY, 'q8_0'), { precision: 'q4' });
  const ids = Array.from({ length: 70 }, (_, i) => 3 + ((i * 37) % 200));  // more than NATIVE_HEAD_MAX_ROWS
  const V = GEMMA3_TINY.vocabSize;
  const onnx = await createGemmaRuntime(source, { precision: 'q4', threads: 2, accuracyLevel: 0, decode: 'onnx' });
  const want = await onnx.step(onnx.newCache(), ids, { logits: 'all' });
  await onnx.dispose();
  const root = path.join(dir, 'head-cache');
  for (const cache of [undefined, { root, modelStamp: 'tiny-q8' }, { root, modelStamp: 'tiny-q8' }]) {
    const rt = await createGemmaRuntime(source, { precision: 'q4', threads: 2, accuracyLevel: 0, cache });
    try {
      const got = await rt.step(rt.newCache(), ids, { logits: 'all' });
      assert.equal(got.length, ids.length * V);
      assert.ok(maxAbsDiff(got, want) <= 1e-4, `max|Δ| ${maxAbsDiff(got, want)}`);
    } finally {
      await rt.dispose();
    }
  }
});

test('one thread or three give the same logits bit for bit', async () => {
  const { source } = openWeights(model('gqa', GQA, 'q8_0'), { precision: 'q4' });
  for (const level of [0, 4] as const) {
    const one = await decodeLogits(source, { level, decode: 'native', threads: 1 });
    const three = await decodeLogits(source, { level, decode: 'native', threads: 3 });
    assert.equal(worst(one.steps, three.steps), 0, `level ${level}`);
  }
});

test('weights mapped from the file and weights in memory give the same logits', async () => {
  const file = model('tiny', GEMMA3_TINY, 'q8_0');
  const mapped = await decodeLogits(openWeights(file, { precision: 'q4' }).source, { level: 4, decode: 'native' });
  const read = await decodeLogits(loadModel(file, { precision: 'q4' }).weights, { level: 4, decode: 'native' });
  assert.equal(worst(mapped.steps, read.steps), 0);
});

test('the runtime says why it decodes with ONNX Runtime', async () => {
  const file = model('tiny', GEMMA3_TINY, 'q8_0');
  const f32 = await createGemmaRuntime(openWeights(file, { precision: 'f32' }).source, { precision: 'f32', threads: 1 });
  assert.equal(f32.decodeBy.native, false);
  assert.equal(f32.decodeBy.note, 'layers ONNX Runtime (precision f32), head ONNX Runtime (precision f32)');
  await f32.dispose();
  const requant = await createGemmaRuntime(openWeights(file, { precision: 'q4' }).source, { precision: 'q4', threads: 1, headBits: 4 });
  assert.equal(requant.decodeBy.note, 'layers native, head ONNX Runtime (the head is requantised to 4 bits)');
  await requant.dispose();
});

test('decoders start and stop their threads cleanly, many times over', () => {
  // In a child process: a worker that started after the first step had begun once made that step wait
  // forever, which in this process would hang the whole test run.
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'native-threads-child.ts'), model('tiny', GEMMA3_TINY, 'q8_0'), '200'],
    { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, 'the child did not finish in 60 s: a step waits for a thread that never joined');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'done');
  const { source } = openWeights(model('tiny', GEMMA3_TINY, 'q8_0'), { precision: 'q4' });
  const d = NativeDecoder.create(source, 2, 4);
  assert.ok(d instanceof NativeDecoder);
  d.dispose();
  const rope = () => ({ cos: new Float32Array(GEMMA3_TINY.headDim / 2), sin: new Float32Array(GEMMA3_TINY.headDim / 2) });
  const cache = new GemmaKvCache({}, GEMMA3_TINY);
  assert.throws(() => d.run(cache, new Float32Array(GEMMA3_TINY.hidden), [0], null, cache.plan(1, 1), rope), /disposed/);
});

test('bad calls into the binary throw instead of reading out of bounds', () => {
  const m = nativeModule();
  assert.ok('module' in m);
  const native = m.module;
  const file = model('tiny', GEMMA3_TINY, 'q8_0');
  const cfg = GEMMA3_TINY;
  const config = { layers: 1, hidden: cfg.hidden, heads: cfg.heads, kvHeads: cfg.kvHeads, headDim: cfg.headDim, ffn: cfg.intermediate, eps: 1e-6, attnScale: 0.1, level: 4 };
  const norms = { inNorm: new Float32Array(cfg.hidden), qNorm: new Float32Array(cfg.headDim), kNorm: new Float32Array(cfg.headDim), postAttnNorm: new Float32Array(cfg.hidden), preFfnNorm: new Float32Array(cfg.hidden), postFfnNorm: new Float32Array(cfg.hidden), window: 0 };
  const blocks = (rows: number, k: number) => new Uint8Array(rows * (k / 32) * 18);
  const Q = cfg.heads * cfg.headDim, KV = cfg.kvHeads * cfg.headDim;
  const good = { q: blocks(Q, cfg.hidden), k: blocks(KV, cfg.hidden), v: blocks(KV, cfg.hidden), o: blocks(cfg.hidden, Q), gate: blocks(cfg.intermediate, cfg.hidden), up: blocks(cfg.intermediate, cfg.hidden), down: blocks(cfg.hidden, cfg.intermediate), ...norms };
  assert.throws(() => native.createDecoder(config, [{ ...good, q: blocks(Q - 1, cfg.hidden) }], 1), /layer 0: q is neither/);
  assert.throws(() => native.createDecoder(config, [{ ...good, down: 1 << 30 }], 1, file), /layer 0: down is neither/);
  assert.throws(() => native.createDecoder(config, [{ ...good, gate: 0 }], 1), /gate is neither/, 'an offset without a file');
  assert.throws(() => native.createDecoder(config, [{ ...good, qNorm: new Float32Array(3) }], 1), /qNorm is not a Float32Array/);
  assert.throws(() => native.createDecoder({ ...config, hidden: 48 }, [good], 1), /unsupported shape/);
  assert.throws(() => native.createDecoder(config, [good], 1, path.join(dir, 'missing.gguf')), /cannot be mapped/);
  const d = native.createDecoder(config, [good], 2);
  // Slots 0 and 1 of an empty cache hold NaN, which the run never reads; its one token's key and value go to slot 1.
  const cache = { k: new Float32Array(2 * KV).fill(NaN), v: new Float32Array(2 * KV).fill(NaN), positions: new Int32Array(2), slots: Int32Array.of(1), capacity: 2, filled: 0, cos: new Float32Array(cfg.headDim / 2), sin: new Float32Array(cfg.headDim / 2) };
  native.run(d, new Float32Array(cfg.hidden).fill(1), Int32Array.of(0), null, [cache]);
  for (let g = 0; g < cfg.kvHeads; g++) {
    const at = (a: Float32Array, slot: number) => Array.from(a.subarray((g * 2 + slot) * cfg.headDim, (g * 2 + slot + 1) * cfg.headDim));
    assert.ok(at(cache.k, 0).every(Number.isNaN) && at(cache.v, 0).every(Number.isNaN), 'slot 0 was written');
    assert.ok(at(cache.k, 1).every(Number.isFinite) && at(cache.v, 1).every(Number.isFinite), 'slot 1 was not written');
  }
  assert.throws(() => native.run(d, new Float32Array(cfg.hidden - 1), Int32Array.of(0), null, [cache]), /wrong type or size/);
  assert.throws(() => native.run(d, new Float32Array(cfg.hidden), Int32Array.of(0), null, [{ ...cache, filled: 3 }]), /cache 0 is not/);
  // A slot outside the cache, or a slot list of the wrong length, would write out of bounds.
  for (const slots of [Int32Array.of(2), Int32Array.of(-2), Int32Array.of(0, 1), new Int32Array(0)])
    assert.throws(() => native.run(d, new Float32Array(cfg.hidden), Int32Array.of(0), null, [{ ...cache, slots }]), /cache 0 is not/, `slots ${slots}`);
  assert.throws(() => native.run({}, new Float32Array(cfg.hidden), Int32Array.of(0), null, [cache]), /no live decoder/);
  const pair = (rank: number, inp: number, out: number) => ({ a: new Float32Array(rank * inp), b: new Float32Array(out * rank), rank });
  const none = pair(0, 0, 0);
  assert.throws(() => native.createAdapter(d, [{ qkv: pair(2, cfg.hidden - 1, Q + 2 * KV), o: none, gateup: none, down: none }]), /layer 0: a pair is not/);
  assert.throws(() => native.createAdapter(d, [{ qkv: none, o: none, gateup: none }]), /layer 0: a pair is not/);
  const adapter = native.createAdapter(d, [{ qkv: pair(2, cfg.hidden, Q + 2 * KV), o: none, gateup: none, down: pair(1, cfg.intermediate, cfg.hidden) }]);
  native.run(d, new Float32Array(cfg.hidden), Int32Array.of(0), null, [cache], adapter);
  assert.throws(() => native.run(d, new Float32Array(cfg.hidden), Int32Array.of(0), null, [cache], {}), /adapter is not one made for this decoder/);
  const other = native.createDecoder({ ...config, level: 0 }, [good], 1);
  assert.throws(() => native.run(other, new Float32Array(cfg.hidden), Int32Array.of(0), null, [cache], adapter), /adapter is not one made for this decoder/);
  native.destroy(other);
  native.destroy(d);
  assert.throws(() => native.run(d, new Float32Array(cfg.hidden), Int32Array.of(0), null, [cache]), /no live decoder/);
  const head = NativeHead.create(openWeights(file, { precision: 'q4' }).source, 1, 4);
  assert.ok(head instanceof NativeHead);
  assert.throws(() => native.logits(d, new Float32Array(cfg.hidden), 1, new Float32Array(cfg.vocabSize)), /no live head/);
  assert.equal(head.logits(new Float32Array(cfg.hidden).fill(1), 1).length, cfg.vocabSize);
  const h = (head as unknown as { handle: object }).handle;
  const row = new Float32Array(cfg.hidden);
  const out = new Float32Array(cfg.vocabSize);
  const ids = new Int32Array(16);
  assert.throws(() => native.choose(h, row, 0, null, out, ids), /top must be a positive count/);
  assert.throws(() => native.choose(h, row, 1, Int32Array.of(3, cfg.vocabSize), out, ids), /outside the vocabulary/);
  assert.throws(() => native.choose(h, row, 1, Int32Array.of(-1), out, ids), /outside the vocabulary/);
  assert.throws(() => native.choose(h, row, 1, new Uint32Array(2) as unknown as Int32Array, out, ids), /among is not an Int32Array/);
  assert.throws(() => native.choose(h, row, 1, null, new Float32Array(cfg.vocabSize - 1), ids), /wrong type or size/);
  assert.throws(() => native.choose(h, row, 1, null, out, new Float32Array(4) as unknown as Int32Array), /ids is not a non-empty Int32Array/);
  assert.throws(() => (native.choose as (...a: unknown[]) => unknown)(h, row, 1, null, out), /no live head/, 'a missing argument');
  const lp = new Float64Array(1);
  assert.throws(() => native.logProbs(h, row, 1, Int32Array.of(1), Int32Array.of(0), lp), /a pick is outside the rows/);
  assert.throws(() => native.logProbs(h, row, 1, Int32Array.of(0), Int32Array.of(cfg.vocabSize), lp), /a pick is outside the rows or the vocabulary/);
  assert.throws(() => native.logProbs(h, row, 1, Int32Array.of(0), Int32Array.of(0, 1), lp), /wrong type or size/);
  assert.throws(() => native.logProbs(h, row, 1, Int32Array.of(0), Int32Array.of(0), new Float32Array(1) as unknown as Float64Array), /wrong type or size/);
  assert.throws(() => native.logProbs(h, row, 2, Int32Array.of(0), Int32Array.of(0), lp), /wrong type or size/, 'two rows asked of one');
  head.dispose();
  assert.throws(() => head.logits(new Float32Array(cfg.hidden), 1), /disposed/);
  assert.throws(() => head.choose(row, 1), /disposed/);
});

test('the native head\'s log-probabilities are log softmax of its logits, without the logits leaving it', () => {
  for (const embedding of ['q8_0', 'q4_0'] as const) {
    // A vocabulary that is not a multiple of the head's parts, and more rows than it holds at once (16).
    const cfg = { ...GEMMA3_TINY, vocabSize: 5000 };
    const head = NativeHead.create(openWeights(model(`lp-${embedding}`, cfg, embedding), { precision: 'q4' }).source, 2, 4);
    assert.ok(head instanceof NativeHead);
    const n = 19, C = cfg.hidden, V = cfg.vocabSize;
    const rows = Float32Array.from({ length: n * C }, (_, i) => Math.sin(i * 0.37) * 3);
    const logits = head.logits(rows, n);
    const pickRow = Int32Array.from({ length: 40 }, (_, j) => j % n), pickId = Int32Array.from({ length: 40 }, (_, j) => (j * 997) % V);
    const got = head.logProbs(rows, n, pickRow, pickId);
    for (let j = 0; j < got.length; j++) {
      const x = Array.from(logits.subarray(pickRow[j] * V, (pickRow[j] + 1) * V));
      const max = x.reduce((m, v) => Math.max(m, v), -Infinity);
      const want = x[pickId[j]] - max - Math.log(x.reduce((s, v) => s + Math.exp(v - max), 0));
      assert.ok(Math.abs(got[j] - want) <= 1e-9, `${embedding}: pick ${j} (row ${pickRow[j]}, id ${pickId[j]}): ${got[j]} against ${want}`);
    }
    head.dispose();
  }
});

/**
 * Checks one choice against the whole exact head: the `top` largest of `among` (all ids when absent) bit for bit
 * the exact ones, every other logit of `among` exact or below the top-th exact; returns how many were exact.
 */
function checkChoice(head: NativeHead, row: Float32Array, top: number, among?: Int32Array): number {
  const full = head.logits(row, 1);
  const { logits, exact, candidates } = head.choose(row, top, among);
  const ids = among ? Array.from(among) : Array.from(full.keys());
  ids.sort((a, b) => full[b] - full[a] || a - b);
  const kept = Math.min(top, ids.length);
  const kth = full[ids[kept - 1]];
  for (const id of ids.slice(0, kept)) assert.ok(Object.is(logits[id], full[id]), `top ${top}: id ${id} is ${logits[id]}, exact ${full[id]}`);
  for (const id of ids) assert.ok(Object.is(logits[id], full[id]) || logits[id] < kth, `top ${top}: id ${id}'s estimate ${logits[id]} reaches the top (${kth})`);
  // The listed ids were computed exactly and hold the top: all the rows computed exactly, or where the head
  // computed every row, those that reach the top-th (ties included).
  if (candidates) {
    const reaching = ids.filter((id) => full[id] >= kth);
    assert.equal(candidates.length, exact === full.length ? reaching.length : exact);
    assert.equal(new Set(candidates).size, candidates.length);
    for (const id of candidates) assert.ok(Object.is(logits[id], full[id]) && (!among || among.includes(id)), `listed id ${id}`);
    for (const id of ids.slice(0, kept)) assert.ok(candidates.includes(id), `top id ${id} is listed`);
  } else {
    // None listed: too many to list (greedy on a head computed whole: more than 64 ties), or a top past
    // HEAD_CHOOSE_MAX_TOP (4096).
    const reaching = ids.filter((id) => full[id] >= kth).length;
    const whole = exact === full.length;
    assert.ok(exact > 8192 || top > 4096 || reaching > 8192 || (whole && top === 1 && reaching > 64), `${exact} rows exact but none listed`);
  }
  return exact;
}

test('a head computed whole lists the rows that reach the choice\'s top, ties included, for the sampler to read', () => {
  const rng = new Rng(13);
  const random = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * scale);
  for (const V of [GEMMA3_TINY.vocabSize, 20_000]) {
    const cfg = { ...GEMMA3_TINY, vocabSize: V };
    // A Q8_0 table at int8 activations: every row computed, as on Google's shipped file.
    const head = NativeHead.create(openWeights(model(`whole-${V}`, cfg, 'q8_0'), { precision: 'q4' }).source, 2, 4);
    assert.ok(head instanceof NativeHead);
    try {
      const everyThird = Int32Array.from({ length: Math.ceil(V / 3) }, (_, i) => 3 * i);
      for (let k = 0; k < 4; k++) {
        const row = random(cfg.hidden, 1 + 3 * k);
        for (const top of [1, 7, 64]) {
          assert.equal(checkChoice(head, row, top), V);
          assert.equal(checkChoice(head, row, top, everyThird), V);
          assert.equal(head.choose(row, top).candidates?.length, top, `top ${top}: only the top listed`);
        }
        assert.equal(head.choose(row, 5, Int32Array.of(1, 2, V - 1)).candidates?.length, 3);
      }
      // Every logit ties: each reaches the top, so all are listed where they fit, and none where they do not
      // (greedy lists at most 64 ties a thread).
      const zero = new Float32Array(cfg.hidden);
      assert.equal(head.choose(zero, 7).candidates?.length ?? null, V <= 8192 ? V : null);
      assert.equal(head.choose(zero, 1).candidates, null);
      checkChoice(head, zero, 1);
      checkChoice(head, zero, 7);
    } finally {
      head.dispose();
    }
  }
});

test('the head on many rows at int8 activations (pairs of table rows by four inputs) gives each row the bits it has alone', () => {
  const rng = new Rng(12);
  for (const embedding of ['q8_0', 'q4_0'] as const) {
    // An odd vocabulary: each thread's share ends on a row without a pair.
    const cfg = { ...GEMMA3_TINY, vocabSize: 1001 };
    const head = NativeHead.create(openWeights(model(`tile-${embedding}`, cfg, embedding), { precision: 'q4' }).source, 2, 4);
    assert.ok(head instanceof NativeHead);
    try {
      // 11 rows: two passes of four inputs and three rows a product at a time.
      const n = 11, C = cfg.hidden;
      const rows = Float32Array.from({ length: n * C }, () => (rng.next() - 0.5) * 4);
      const all = head.logits(rows, n);
      for (let i = 0; i < n; i++) {
        const alone: Float32Array = head.logits(rows.subarray(i * C, (i + 1) * C), 1);
        assert.deepEqual(all.subarray(i * cfg.vocabSize, (i + 1) * cfg.vocabSize), alone, `${embedding}: row ${i}`);
      }
    } finally {
      head.dispose();
    }
  }
});

test('the head\'s choice: the top logits exact to the bit, every other one an estimate below them', () => {
  const rng = new Rng(11);
  const random = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * scale);
  // A vocabulary of 20000 overflows a thread's list (4096 rows) when every logit ties, as with a zero row.
  for (const cfg of [GEMMA3_TINY, { ...GEMMA3_TINY, vocabSize: 20_000 }]) {
    const V = cfg.vocabSize;
    const head = NativeHead.create(openWeights(model(`choice-${V}`, cfg, 'q4_0'), { precision: 'q4' }).source, 2, 0);
    assert.ok(head instanceof NativeHead);
    try {
      const everyThird = Int32Array.from({ length: Math.ceil(V / 3) }, (_, i) => 3 * i);
      let fewest = V;
      for (let k = 0; k < 6; k++) {
        const row = random(cfg.hidden, 1 + 3 * k);
        for (const top of [1, 7, 64]) {
          fewest = Math.min(fewest, checkChoice(head, row, top));
          checkChoice(head, row, top, everyThird);
        }
        // Fewer allowed ids than `top`: every one of them exact.
        assert.equal(checkChoice(head, row, 5, Int32Array.of(1, 2, V - 1)), 3);
      }
      // The int8 estimate did the work: far fewer rows than the vocabulary were computed exactly.
      assert.ok(fewest < V / 4, `${fewest} of ${V} rows exact`);
      // Every logit ties: all are rescored, through the lists or, past their size, the whole share.
      assert.equal(checkChoice(head, new Float32Array(cfg.hidden), 1), V);
      // More than HEAD_CHOOSE_MAX_TOP: the whole head.
      assert.equal(checkChoice(head, random(cfg.hidden, 2), 5000), V);
    } finally {
      head.dispose();
    }
  }
});

test('a logit that overflows is computed exactly and reported, never left as an estimate that looks masked', () => {
  const m = nativeModule();
  assert.ok('module' in m);
  // One Q4_0 block per row (hidden 32): row 5 at the largest f16 scale with every code 0 (w = −8·65504), the
  // others small. With inputs of 1e33 row 5's product overflows to −Infinity, estimated and exact alike, while
  // every other logit stays finite and the bound's terms too: the estimate path runs and must rescore row 5.
  const V = 64, C = 32;
  const table = new Uint8Array(V * 18);
  const rng = new Rng(2);
  for (let r = 0; r < V; r++) {
    new DataView(table.buffer).setUint16(r * 18, r === 5 ? 0x7bff : 0x211f, true);
    for (let j = 2; j < 18; j++) table[r * 18 + j] = r === 5 ? 0 : Math.floor(rng.next() * 256);
  }
  const handle = m.module.createHead({ vocab: V, hidden: C, type: 0, eps: 1e-6, softcap: 0, level: 0 }, table, new Float32Array(C).fill(1e33), 2);
  try {
    const row = new Float32Array(C).fill(1);
    const full = new Float32Array(V);
    assert.equal(m.module.logits(handle, row, 1, full), 1);
    assert.equal(full[5], -Infinity);
    const out = new Float32Array(V);
    const r = m.module.choose(handle, row, 1, null, out, new Int32Array(V));
    assert.equal(r.nonFinite, 1);
    assert.ok(r.exact < V, 'the estimate path ran');
    assert.equal(out[5], -Infinity);
  } finally {
    m.module.destroy(handle);
  }
});

test('generation tells the runtime what it reads: greedy, top-k sampling and JSON extraction give the exact head\'s tokens', async () => {
  const file = model('tiny', GEMMA3_TINY, 'q4_0');
  const opened = await openModel(file, { precision: 'q4', threads: 2 });
  const rt = opened.runtime;
  const gen = opened.gen!;
  // The same runtime with its steps' options seen (or changed) on the way.
  const through = (options: (o: StepOptions) => StepOptions): GemmaRuntime => Object.assign(Object.create(rt) as GemmaRuntime, {
    newCache: () => rt.newCache(),
    step: (cache: KvCache, ids: number[], opts: StepOptions) => rt.step(cache, ids, options(opts)),
  });
  const exactOnly = through((o) => ({ ...o, choice: undefined }));
  let chose = 0;
  const counted = through((o) => {
    if (o.choice) chose++;
    return o;
  });
  try {
    assert.equal(rt.decodeBy.note, 'layers native, head native');
    const promptIds = [2, 10, 20, 30, 40];
    for (const sampling of [{ temperature: 0 }, { temperature: 1, topK: 8, seed: 3 }, { temperature: 0.7, topK: 40, topP: 0.9, seed: 5 }]) {
      const o = { promptIds, maxTokens: 24, sampling, stopIds: [] };
      const a = await generate(counted, gen, o);
      const b = await generate(exactOnly, gen, o);
      assert.deepEqual(a.tokens, b.tokens, JSON.stringify(sampling));
      assert.equal(a.tokens.length, 24);
    }
    assert.equal(chose, 3 * 24, 'every step of greedy and top-k generation carried a choice');
    // Steps with a choice on one cache write into one array (read before the next step), each cache its own.
    const [c1, c2] = [rt.newCache(), rt.newCache()];
    const greedy = { logits: 'last', choice: { top: 1 } } as const;
    const first = await rt.step(c1, promptIds, greedy);
    const best = first.indexOf(Math.max(...first));
    const second = await rt.step(c1, [best], greedy);
    assert.equal(second, first);
    const other = await rt.step(c2, promptIds, greedy);
    assert.notEqual(other, first);
    const plain = await rt.step(c2, [best], { logits: 'last' });
    assert.notEqual(plain, other, 'a step without a choice returns an array of its own');
    assert.equal(plain.indexOf(Math.max(...plain)), second.indexOf(Math.max(...second)));
    c1.dispose();
    c2.dispose();
    const shape = { fields: [{ name: 'name' }, { name: 'severity', enum: ['low', 'high'] }] };
    for (const sampling of [{ temperature: 0 }, { temperature: 1, topK: 16, seed: 2 }]) {
      const o = { promptIds, shape, maxTokens: 40, sampling };
      const a = await extract(counted, gen, o);
      const b = await extract(exactOnly, gen, o);
      assert.deepEqual(a.tokens, b.tokens, JSON.stringify(sampling));
      assert.ok(a.value);
    }
  } finally {
    await rt.dispose();
  }
});
