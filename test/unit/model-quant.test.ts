// Number formats: f16/bf16 rounding, ggml's reference Q4_0/Q8_0 quantisers on known vectors (expected
// bytes computed by an independent numpy float32 transcription of quantize_row_q4_0_ref / q8_0_ref),
// and the MatMulNBits repacks checked by dequantising both layouts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16ToF32, dequantizeBlockQuantized, dequantizeQ4_0, dequantizeQ8_0, f16ToF32, f32ToBf16, f32ToF16,
  q4_0ToMatMulNBits, q8_0ToMatMulNBits, quantizeQ4_0, quantizeQ8_0,
} from '../../src/engine/model/quant';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const vec = (f: (j: number) => number, n = 32) => Float32Array.from({ length: n }, (_, j) => f(j));

test('f16: every finite half survives half → single → half', () => {
  for (let h = 0; h < 65536; h++) {
    const exp = (h >> 10) & 0x1f;
    if (exp === 31 && (h & 0x3ff) !== 0) continue; // NaN payloads
    assert.equal(f32ToF16(f16ToF32(h)), h, `code ${h.toString(16)}`);
  }
});

test('f16: ties round to even, overflow to infinity, tiny values to zero, subnormals exact', () => {
  // 1 + 2^-11 lies halfway between 1 (0x3c00, even) and 1 + 2^-10 (0x3c01): goes to 1.
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00);
  // 1 + 3·2^-11 lies halfway between 0x3c01 (odd) and 0x3c02 (even): goes up.
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16(1 + 2 ** -11 + 2 ** -20), 0x3c01);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // halfway to 2^16 rounds to even = infinity
  assert.equal(f32ToF16(-1e9), 0xfc00);
  assert.equal(f32ToF16(2 ** -24), 0x0001);
  assert.equal(f32ToF16(2 ** -25), 0x0000); // halfway to the smallest subnormal: even is zero
  assert.equal(f32ToF16(1.5 * 2 ** -24), 0x0002); // halfway between 1 and 2 subnormal units: even 2
  assert.equal(f32ToF16(-0), 0x8000);
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
});

test('bf16: round to nearest even and exact widening', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie, even stays
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie, odd goes up
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16(NaN), 0x7fc0);
});

test('Q4_0 matches ggml quantize_row_q4_0_ref on known vectors', () => {
  assert.equal(hex(quantizeQ4_0(vec((j) => j - 8))), 'c0c15b5a5a4a493939382828271717160606');
  assert.equal(hex(quantizeQ4_0(vec((j) => Math.fround(Math.sin(j * 0.7) * 0.05)))), '5b9ef8d38031051b6fbffdf8d38031051b6f');
  assert.equal(hex(quantizeQ4_0(vec(() => 0))), '008088888888888888888888888888888888'); // d = -0
  assert.equal(hex(quantizeQ4_0(vec((j) => -(j * 0.37)))), 'bc3d48483737373726262626151515150404');
});

test('Q8_0 matches ggml quantize_row_q8_0_ref (roundf: halves away from zero)', () => {
  assert.equal(hex(quantizeQ8_0(vec((j) => j - 8))), 'cc31d4d9dfe4eaeff5fa00060b11161c21272c32373d42484d53585e63696e74797f');
  assert.equal(hex(quantizeQ8_0(vec((j) => Math.fround(Math.sin(j * 0.7) * 0.05)))), '670e00527e6e2bd39182af02547e6d29d18f83b104567f6c27cf8e83b306577f6b25');
  const ties = new Float32Array(32);
  ties.set([0.5, 1.5, 2.5, -0.5, -2.5, 127]);
  assert.equal(hex(quantizeQ8_0(ties)), '003c010203fffd7f0000000000000000000000000000000000000000000000000000');
});

test('dequantised values are exactly d·(q−8) for Q4_0 and d·q for Q8_0', () => {
  const x = vec((j) => Math.cos(j * 1.3) * 0.2 + (j % 5) * 0.01, 96);
  const q4 = quantizeQ4_0(x);
  const dq4 = dequantizeQ4_0(q4, 96);
  const q8 = quantizeQ8_0(x);
  const dq8 = dequantizeQ8_0(q8, 96);
  for (let i = 0; i < 96; i++) {
    const b = Math.floor(i / 32), j = i % 32;
    const d4 = f16ToF32(q4[b * 18] | (q4[b * 18 + 1] << 8));
    const byte = q4[b * 18 + 2 + (j % 16)];
    const q = j < 16 ? byte & 15 : byte >> 4;
    assert.equal(dq4[i], d4 * (q - 8));
    const d8 = f16ToF32(q8[b * 34] | (q8[b * 34 + 1] << 8));
    const s8 = (q8[b * 34 + 2 + j] << 24) >> 24;
    assert.equal(dq8[i], d8 * s8);
    // Quantisation error stays within half a step (plus the f16 rounding of d).
    assert.ok(Math.abs(dq4[i] - x[i]) <= Math.abs(d4) * 0.5 + 1e-3, `q4 error at ${i}`);
    assert.ok(Math.abs(dq8[i] - x[i]) <= Math.abs(d8) * 0.5 + 1e-4, `q8 error at ${i}`);
  }
});

test('the Q4_0 → MatMulNBits repack moves nibbles, not values', () => {
  const n = 5, k = 96;
  const x = vec((j) => Math.sin(j * 0.37) * (1 + (j % 7)), n * k);
  const q4 = quantizeQ4_0(x);
  const mm = q4_0ToMatMulNBits(q4, n, k);
  assert.equal(mm.data.length, n * (k / 32) * 16);
  assert.equal(mm.scales.length, n * (k / 32));
  assert.equal(mm.zeroPoint, 8);
  assert.deepEqual(dequantizeBlockQuantized(mm, n, k, 4), dequantizeQ4_0(q4, n * k));
  // Element 2i sits in the low nibble of byte i: element 0 of block 0 is Q4_0 byte 0's low nibble,
  // element 1 is Q4_0 byte 1's low nibble.
  assert.equal(mm.data[0] & 15, q4[2] & 15);
  assert.equal(mm.data[0] >> 4, q4[3] & 15);
  assert.equal(mm.data[8] & 15, q4[2] >> 4); // element 16
});

test('the Q8_0 → MatMulNBits 8-bit repack keeps values with zero point 128', () => {
  const n = 3, k = 64;
  const x = vec((j) => Math.cos(j * 0.11) * 3, n * k);
  const q8 = quantizeQ8_0(x);
  const mm = q8_0ToMatMulNBits(q8, n, k);
  assert.equal(mm.zeroPoint, 128);
  assert.deepEqual(dequantizeBlockQuantized(mm, n, k, 8), dequantizeQ8_0(q8, n * k));
});

test('quantisers refuse lengths that are not whole blocks', () => {
  assert.throws(() => quantizeQ4_0(new Float32Array(40)), /multiple of the block size 32/);
  assert.throws(() => q4_0ToMatMulNBits(new Uint8Array(17), 1, 32), /bytes for \[1, 32\]/);
});
