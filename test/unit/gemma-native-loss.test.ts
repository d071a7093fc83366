// The native head's training loss (head.c's head_loss, NativeHead.loss) on random tiny models with a Q8_0 and a
// Q4_0 embedding, the head made at int8 activations (level 4, the CPU's default) and float ones: the loss reads
// the table at float activations either way, so each row's cross-entropy and hit are held to float64 logits of
// the normed row and E dequantised in JS from the file's table, and the gradient with respect to the rows to
// softmax·E − E[label] taken back through the final norm in float64; non-finite logits give NaN and no gradient; bad calls throw.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GEMMA3_TINY, type GemmaConfig } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { openWeights } from '../../src/engine/model/load';
import { EMBED_NAME, FINAL_NORM_NAME } from '../../src/engine/model/weights';
import { dequantizeBlocks } from '../../src/engine/model/quantTypes';
import type { WeightSource } from '../../src/engine/model/weightSource';
import { NativeHead } from '../../src/engine/gemma/nativeHead';
import { nativeModule, type NativeModule } from '../../src/engine/gemma/nativeModule';
import { Rng } from '../../src/engine/rng';
import { tempDir } from './temp-helpers';

const loaded = nativeModule();
const skip = 'module' in loaded ? false : `no native module: ${loaded.reason}`;
const dir = tempDir('gemma-native-loss-');
/** An odd vocabulary: the threads' shares and the last LOSS_ROWS group of the table end part way. */
const CFG: GemmaConfig = { ...GEMMA3_TINY, vocabSize: 1001 };

function source(embedding: 'q4_0' | 'q8_0'): WeightSource {
  const file = path.join(dir, `loss-${embedding}.gguf`);
  if (!fs.existsSync(file)) writeRandomGguf(file, CFG, { seed: 5, dtype: 'q4_0', embedding });
  return openWeights(file, { precision: 'q4' }).source;
}

function head(src: WeightSource, level: 0 | 4, threads = 2): NativeHead {
  const h = NativeHead.create(src, threads, level);
  assert.ok(h instanceof NativeHead, `no native head: ${'reason' in h ? h.reason : ''}`);
  return h;
}

/** The table E [V, C] as stored, dequantised in JS. */
function table(src: WeightSource): Float32Array {
  const storage = src.storage(EMBED_NAME);
  assert.ok(storage === 'q4_0' || storage === 'q8_0');
  return dequantizeBlocks(storage, src.rows(EMBED_NAME, 0, CFG.vocabSize).data as Uint8Array, CFG.vocabSize * CFG.hidden);
}

function randomRows(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n * CFG.hidden }, () => (rng.next() - 0.5) * 4);
}

/** The first index of the largest value. */
function argmax(x: Float32Array | Float64Array): number {
  let arg = 0;
  for (let v = 1; v < x.length; v++) if (x[v] > x[arg]) arg = v;
  return arg;
}

/** Labels for n rows: the argmax for every third row (so that some rows hit), a random id for the others. */
function labelsFor(rng: Rng, logits: Float64Array, n: number): Int32Array {
  const V = CFG.vocabSize;
  return Int32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? argmax(logits.subarray(i * V, (i + 1) * V)) : Math.floor(rng.next() * V)));
}

/** The logits of rows [n, C] in float64: the final norm, then every row of E (what the loss computes, at float activations at every level). */
function exactLogits(src: WeightSource, E: Float32Array, rows: Float32Array, n: number): Float64Array {
  const { vocabSize: V, hidden: C, rmsNormEps: eps } = CFG;
  const w = src.rows(FINAL_NORM_NAME, 0, 1).data as Float32Array;
  const out = new Float64Array(n * V);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += rows[i * C + c] ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    const x = Float64Array.from({ length: C }, (_, c) => rows[i * C + c] * r * w[c]);
    for (let v = 0; v < V; v++) {
      let dot = 0;
      for (let c = 0; c < C; c++) dot += x[c] * E[v * C + c];
      out[i * V + v] = dot;
    }
  }
  return out;
}

/** dNormed [C] (float64) back through the final norm at row i of rows, in float64: r·w·d − x·r³·Σ(w·d·x)/C. */
function throughNorm(src: WeightSource, rows: Float32Array, i: number, dNormed: Float64Array): Float64Array {
  const { hidden: C, rmsNormEps: eps } = CFG;
  const w = src.rows(FINAL_NORM_NAME, 0, 1).data as Float32Array;
  let ss = 0, gx = 0;
  for (let c = 0; c < C; c++) {
    ss += rows[i * C + c] ** 2;
    gx += w[c] * dNormed[c] * rows[i * C + c];
  }
  const r = 1 / Math.sqrt(ss / C + eps);
  return Float64Array.from({ length: C }, (_, c) => r * w[c] * dNormed[c] - rows[i * C + c] * r ** 3 * gx / C);
}

/** Row i's loss, hit and gradient with respect to its normed row, in float64 from its logits and E. */
function expected(logits: Float64Array, E: Float32Array, i: number, label: number): { loss: number; hit: boolean; grad: Float64Array } {
  const { vocabSize: V, hidden: C } = CFG;
  const x = logits.subarray(i * V, (i + 1) * V);
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  const grad = new Float64Array(C);
  for (let v = 0; v < V; v++) {
    const p = Math.exp(x[v] - lse);
    for (let c = 0; c < C; c++) grad[c] += p * E[v * C + c];
  }
  for (let c = 0; c < C; c++) grad[c] -= E[label * C + c];
  return { loss: lse - x[label], hit: argmax(x) === label, grad };
}

const CASES = [
  { embedding: 'q8_0', level: 4 },
  { embedding: 'q4_0', level: 4 },
  { embedding: 'q8_0', level: 0 },
  // A Q4_0 table at float activations is read from the head's repacked copy.
  { embedding: 'q4_0', level: 0 },
] as const;

for (const { embedding, level } of CASES) {
  test(`the loss, hits and gradient of the rows are the float64 ones of the exact logits (${embedding} table, level ${level})`, { skip }, () => {
    const src = source(embedding);
    const h = head(src, level);
    try {
      const E = table(src);
      const rng = new Rng(level * 10 + (embedding === 'q8_0' ? 1 : 2));
      const { hidden: C } = CFG;
      // 11 rows: two passes of four rows in add_products and three alone; two threads' shares of the rows.
      const n = 11;
      const rows = randomRows(rng, n);
      const logits = exactLogits(src, E, rows, n);
      const labels = labelsFor(rng, logits, n);
      const { loss, hits, dRows } = h.loss(rows, n, labels, true);
      assert.ok(dRows);
      assert.equal(loss.length, n);
      assert.equal(dRows.length, n * C);
      let hitCount = 0;
      for (let i = 0; i < n; i++) {
        const want = expected(logits, E, i, labels[i]);
        assert.ok(Math.abs(loss[i] - want.loss) <= 1e-5 * Math.max(1, Math.abs(want.loss)), `row ${i}: loss ${loss[i]} against ${want.loss}`);
        assert.equal(hits[i], want.hit ? 1 : 0, `row ${i}: hit`);
        hitCount += hits[i];
        const grad = throughNorm(src, rows, i, want.grad);
        let scale = 0, worst = 0;
        for (let c = 0; c < C; c++) scale = Math.max(scale, Math.abs(grad[c]));
        for (let c = 0; c < C; c++) worst = Math.max(worst, Math.abs(dRows[i * C + c] - grad[c]));
        assert.ok(scale > 0 && worst <= 1e-4 * scale, `row ${i}: gradient off by ${worst} (largest ${scale})`);
      }
      assert.ok(hitCount >= Math.ceil(n / 3) && hitCount < n, `${hitCount} hits`);
      // Without the gradient: the same loss and hits, bit for bit.
      const again = h.loss(rows, n, labels, false);
      assert.equal(again.dRows, null);
      assert.deepEqual(again.loss, loss);
      assert.deepEqual(again.hits, hits);
      // One row alone: its loss has the bits it has among the others.
      const one = h.loss(rows.subarray(3 * C, 4 * C), 1, labels.subarray(3, 4), true);
      assert.ok(Object.is(one.loss[0], loss[3]), `row 3 alone: ${one.loss[0]} against ${loss[3]}`);
    } finally {
      h.dispose();
    }
  });
}

test('one thread or three give the same loss and gradient, bit for bit', { skip }, () => {
  const src = source('q8_0');
  const one = head(src, 4, 1), three = head(src, 4, 3);
  try {
    const rng = new Rng(77);
    const n = 9;
    const rows = randomRows(rng, n);
    const labels = labelsFor(rng, exactLogits(src, table(src), rows, n), n);
    const a = one.loss(rows, n, labels, true), b = three.loss(rows, n, labels, true);
    assert.deepEqual(b.loss, a.loss);
    assert.deepEqual(b.hits, a.hits);
    // Each gradient entry sums over the whole vocabulary in order, whichever thread has its column.
    assert.deepEqual(b.dRows, a.dRows);
  } finally {
    one.dispose();
    three.dispose();
  }
});

test('a row whose logits are not finite makes every loss NaN and the gradient null', { skip }, () => {
  for (const embedding of ['q8_0', 'q4_0'] as const) {
    const h = head(source(embedding), 4);
    try {
      const n = 5, C = CFG.hidden;
      const rows = randomRows(new Rng(9), n);
      rows.fill(NaN, 2 * C, 3 * C);
      const labels = Int32Array.from({ length: n }, (_, i) => i * 7);
      const { loss, hits, dRows } = h.loss(rows, n, labels, true);
      assert.equal(dRows, null, embedding);
      assert.ok(loss.every(Number.isNaN), `${embedding}: ${loss}`);
      assert.ok(hits.every((x) => x === 0), embedding);
      // The head is still good for finite rows afterwards.
      rows.fill(1, 2 * C, 3 * C);
      const ok = h.loss(rows, n, labels, true);
      assert.ok(ok.loss.every(Number.isFinite) && ok.dRows !== null, embedding);
    } finally {
      h.dispose();
    }
  }
});

test('bad calls to loss throw instead of reading out of bounds', { skip }, () => {
  const native = (loaded as { module: NativeModule }).module;
  const { vocabSize: V, hidden: C } = CFG;
  const h = head(source('q8_0'), 4);
  const handle = (h as unknown as { handle: object }).handle;
  const n = 2;
  const rows = new Float32Array(n * C).fill(1), labels = Int32Array.of(0, V - 1), logits = new Float32Array(n * V);
  const loss = new Float32Array(n), hit = new Float32Array(n), d = new Float32Array(n * C);
  assert.equal(native.loss(handle, rows, n, labels, logits, loss, hit, d), 0);
  assert.equal(native.loss(handle, rows, n, labels, logits, loss, hit, null), 0);
  assert.throws(() => native.loss(handle, rows, n, Int32Array.of(0, V), logits, loss, hit, d), /label is outside the vocabulary/);
  assert.throws(() => native.loss(handle, rows, n, Int32Array.of(-1, 0), logits, loss, hit, d), /label is outside the vocabulary/);
  assert.throws(() => native.loss(handle, rows, n, Int32Array.of(0), logits, loss, hit, d), /wrong type or size/, 'one label for two rows');
  assert.throws(() => native.loss(handle, rows, n, Uint32Array.of(0, 1) as unknown as Int32Array, logits, loss, hit, d), /wrong type or size/);
  assert.throws(() => native.loss(handle, rows, n, labels, new Float32Array(n * V - 1), loss, hit, d), /wrong type or size/);
  assert.throws(() => native.loss(handle, rows, n, labels, logits, new Float32Array(n + 1), hit, d), /wrong type or size/);
  assert.throws(() => native.loss(handle, rows, n, labels, logits, loss, new Float64Array(n) as unknown as Float32Array, d), /wrong type or size/);
  assert.throws(() => native.loss(handle, rows, n, labels, logits, loss, hit, new Float32Array(n * C - 1)), /dRows is neither/);
  assert.throws(() => native.loss(handle, rows, n, labels, logits, loss, hit, new Float64Array(n * C) as unknown as Float32Array), /dRows is neither/);
  assert.throws(() => native.loss(handle, rows.subarray(1), n, labels, logits, loss, hit, d), /rows has the wrong type or size/);
  assert.throws(() => native.loss(handle, rows, 0, labels, logits, loss, hit, d), /n must be a positive row count/);
  assert.throws(() => native.loss({}, rows, n, labels, logits, loss, hit, d), /no live head/);
  assert.throws(() => (native.loss as (...a: unknown[]) => unknown)(handle, rows, n, labels, logits, loss, hit), /no live head/, 'a missing argument');
  assert.throws(() => h.loss(rows, n, Int32Array.of(V, 0), true), /label is outside the vocabulary/);
  assert.throws(() => h.loss(rows, n + 1, Int32Array.of(0, 0, 0), true), /rows has the wrong type or size/);
  h.dispose();
  assert.throws(() => h.loss(rows, n, labels, true), /disposed/);
  assert.throws(() => native.loss(handle, rows, n, labels, logits, loss, hit, d), /no live head/);
});
