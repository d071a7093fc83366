// The protobuf writer: wire-format bytes for the field kinds ONNX uses, and a built graph that
// onnxruntime loads with inputs, outputs, attributes, inline and external initializers as declared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PbWriter } from '../../src/engine/onnx/proto';
import { Graph } from '../../src/engine/onnx/graph';
import * as op from '../../src/engine/onnx/ops';
import { createSession, f32Tensor } from '../../src/engine/onnx/session';

test('varints, negative int64, floats, strings and packed fields encode as protobuf does', () => {
  assert.deepEqual([...new PbWriter().int(1, 150).finish()], [0x08, 0x96, 0x01]);
  // -1 as int64 is ten bytes of two's complement.
  assert.deepEqual([...new PbWriter().int(3, -1).finish()], [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.deepEqual([...new PbWriter().float(2, 1).finish()], [0x15, 0x00, 0x00, 0x80, 0x3f]);
  assert.deepEqual([...new PbWriter().string(4, 'hi').finish()], [0x22, 0x02, 0x68, 0x69]);
  assert.deepEqual([...new PbWriter().packedInts(1, [3, 270]).finish()], [0x0a, 0x03, 0x03, 0x8e, 0x02]);
  assert.deepEqual([...new PbWriter().int(1, 2 ** 40).finish()], [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
  assert.throws(() => new PbWriter().int(1, 0.5), /not a safe integer/);
});

test('a built graph loads in onnxruntime: inline and external initializers, symbolic dims, renamed outputs', async () => {
  const g = new Graph('t');
  const x = g.input('x', 'float32', ['N', 300]);
  const big = Float32Array.from({ length: 300 }, (_, i) => i / 300); // 1200 bytes: external data
  const w = g.initializer('w', 'float32', [300], big);
  const y = op.mul(g, op.add(g, x, w), g.constF32(2));
  const z = op.reduceSum(g, y, [-1], false);
  g.output(z, 'sum');
  g.output(y, 'scaled');
  const built = g.build();
  assert.equal(built.externalData.length, 1);
  assert.ok(!g.nodes.some((n) => n.op === 'Identity'), 'node outputs are renamed, not copied');
  const s = await createSession(built, { threads: 1 });
  assert.deepEqual([...s.inputNames], ['x']);
  assert.deepEqual([...s.outputNames].sort(), ['scaled', 'sum']);
  const r = await s.run({ x: f32Tensor(new Float32Array(600).fill(1), [2, 300]) });
  assert.deepEqual([...r.sum.dims], [2]);
  const want = big.reduce((a, v) => a + 2 * (1 + v), 0);
  assert.ok(Math.abs((r.sum.data as Float32Array)[1] - want) < 1e-3);
  await s.release();
  assert.throws(() => g.input('x', 'float32', [1]), /used twice/);
});
