// The device choice (gemmaTune.engine.device, --device): what 'auto', 'cpu' and 'webgpu' resolve to, the
// CPU fallback when WebGPU has no adapter (this machine has no GPU: CI exercises the fallback), and the
// graphs built for WebGPU: the ops its EP lacks are rewritten (onnx/lowering.ts, the train graph's
// dequantisation), and the rewritten graphs compute the CPU graphs' numbers (run here on the CPU EP; the
// WebGPU kernels themselves are compared on a GPU by bench/webgpuCheck.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Graph } from '../../src/engine/onnx/graph';
import type { NodeRecord } from '../../src/engine/onnx/nodes';
import * as op from '../../src/engine/onnx/ops';
import { createSession, f32Tensor } from '../../src/engine/onnx/session';
import { deviceRoles, openOnDevice, resolveDevice, shortOrtError, webGpuProblem, WebGpuUnavailableError } from '../../src/engine/onnx/device';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { openWeights } from '../../src/engine/model/load';
import { createGemmaRuntime } from '../../src/engine/gemma/ortRuntime';
import { trainGraph } from '../../src/engine/gemma/trainGraph';
import { inferenceGraph } from '../../src/engine/gemma/inferenceGraph';
import { OrtStepEngine } from '../../src/engine/train/ortEngine';
import { ALL_TARGETS, initLora } from '../../src/engine/train/lora';
import { collate } from '../../src/engine/train/batch';
import { syntheticExamples } from '../../src/engine/train/benchTrain';
import type { Precision } from '../../src/engine/gemma/runtime';
import { Rng } from '../../src/engine/rng';
import { maxAbsDiff } from './gemma-helpers';
import { tempDir } from './temp-helpers';
import { buildWorker, repoRoot } from './worker-helpers';
import { EngineClient } from '../../src/client/engineClient';

const dir = tempDir('onnx-device-');
const model = (precision: Precision) => {
  const file = path.join(dir, `tiny-${precision}.gguf`);
  if (!fs.existsSync(file)) writeRandomGguf(file, GEMMA3_TINY, { seed: 3, dtype: precision === 'q4' ? 'q4_0' : 'f32' });
  return file;
};
/** Whether this machine has a working WebGPU adapter (then the fallback cases cannot happen here). */
const hasWebGpu = async () => (await webGpuProblem()) === null;
const opsOf = (nodes: NodeRecord[]) => new Set(nodes.map((n) => (n.domain ? `${n.domain}:${n.op}` : n.op)));
/** Ops ORT 1.30's WebGPU EP has no kernel for, among those our graphs use. */
const NOT_ON_WEBGPU = ['com.microsoft:FusedMatMul', 'LogSoftmax', 'BitwiseAnd', 'BitShift'];

test('cpu resolves to the CPU without asking for a GPU', async () => {
  assert.deepEqual(await resolveDevice('cpu'), { requested: 'cpu', device: 'cpu', tried: false });
});

test('roles: webgpu runs both on the GPU, auto trains there and infers on the CPU, a fallback runs both on the CPU', () => {
  assert.deepEqual(deviceRoles({ requested: 'webgpu', device: 'webgpu' }), { inference: 'webgpu', training: 'webgpu' });
  assert.deepEqual(deviceRoles({ requested: 'auto', device: 'webgpu' }), { inference: 'cpu', training: 'webgpu' });
  assert.deepEqual(deviceRoles({ requested: 'auto', device: 'cpu' }), { inference: 'cpu', training: 'cpu' });
  assert.deepEqual(deviceRoles({ requested: 'cpu', device: 'cpu' }), { inference: 'cpu', training: 'cpu' });
});

test('auto falls back to the CPU with its reason where WebGPU has no adapter; webgpu then fails with it', async (t) => {
  if (await hasWebGpu()) {
    assert.equal((await resolveDevice('auto', { platformCheck: false })).device, 'webgpu');
    t.skip('this machine has a WebGPU adapter');
    return;
  }
  // Dawn asked (as on a machine whose GPU node exists but no driver answers).
  const asked = await resolveDevice('auto', { platformCheck: false });
  assert.equal(asked.device, 'cpu');
  assert.equal(asked.tried, true);
  assert.match(asked.fallbackReason ?? '', /^WebGPU is not available: .*adapter/i);
  assert.doesNotMatch(asked.fallbackReason!, /\.cc:\d+/, 'the reason is ORT\'s message without its source location');
  await assert.rejects(resolveDevice('webgpu'), (e: unknown) => e instanceof WebGpuUnavailableError && /adapter/i.test(e.message));
  if (process.platform === 'linux' && !['/dev/dri', '/dev/nvidia0', '/dev/dxg'].some((p) => fs.existsSync(p))) {
    // No GPU device node: 'auto' does not even ask Dawn.
    const quiet = await resolveDevice('auto');
    assert.deepEqual(quiet, { requested: 'auto', device: 'cpu', tried: false, fallbackReason: 'no GPU device: none of /dev/dri/renderD*, /dev/nvidia0, /dev/dxg exists' });
  }
});

test('ORT errors are shortened to their message', () => {
  assert.equal(shortOrtError('/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(...)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters\n'),
    'Failed to get a WebGPU adapter: No supported adapters');
  assert.equal(shortOrtError('/src/x.cc:12 something broke'), 'something broke');
});

test('under auto, a runtime WebGPU cannot build is built on the CPU, and the reason is kept', async (t) => {
  if (await hasWebGpu()) {
    t.skip('this machine has a WebGPU adapter');
    return;
  }
  const file = model('q4');
  const open = (device: 'cpu' | 'webgpu') => createGemmaRuntime(openWeights(file, { precision: 'q4' }).source, { precision: 'q4', threads: 1, device });
  const { value: rt, resolution } = await openOnDevice({ requested: 'auto', device: 'webgpu', tried: true }, 'webgpu', open);
  try {
    assert.equal(rt.device, 'cpu');
    assert.equal(resolution.device, 'cpu');
    assert.match(resolution.fallbackReason ?? '', /^WebGPU failed: .*adapter/i);
    assert.equal((await rt.step(rt.newCache(), [2, 10, 11], { logits: 'last' })).length, GEMMA3_TINY.vocabSize);
  } finally {
    await rt.dispose();
  }
  await assert.rejects(openOnDevice({ requested: 'webgpu', device: 'webgpu', tried: true }, 'webgpu', open), /adapter/i);
});

test('FusedMatMul and LogSoftmax are rewritten for WebGPU into ops it has, with the same values', async () => {
  const build = (target: 'cpu' | 'webgpu') => {
    const g = new Graph('lowering');
    g.target = target;
    const a = g.input('a', 'float32', [3, 5]);
    const b = g.input('b', 'float32', [4, 5]);
    const q = g.input('q', 'float32', [2, 1, 3, 6]);
    const k = g.input('k', 'float32', [2, 1, 4, 6]);
    g.output(op.fusedMatMul(g, a, b, { transB: true, alpha: 0.5 }), 'gemm');
    g.output(op.fusedMatMul(g, q, k, { transB: true, alpha: 0.25 }), 'batched');
    g.output(op.fusedMatMul(g, a, q, { transA: true }), 'trans_a');
    g.output(g.node('LogSoftmax', [a], [{ dtype: 'float32', shape: [3, 5] }], { axis: { kind: 'int', value: -1 } })[0], 'lsm');
    return g;
  };
  const rng = new Rng(8);
  const t = (dims: number[]) => f32Tensor(Float32Array.from({ length: dims.reduce((x, y) => x * y, 1) }, () => rng.next() * 4 - 2), dims);
  const feeds = { a: t([3, 5]), b: t([4, 5]), q: t([2, 1, 3, 6]), k: t([2, 1, 4, 6]) };
  const gpu = build('webgpu');
  const ops = opsOf(gpu.targetNodes());
  for (const o of NOT_ON_WEBGPU) assert.ok(!ops.has(o), `${o} left in the WebGPU graph`);
  assert.ok(ops.has('Gemm') && ops.has('Transpose') && ops.has('MatMul') && ops.has('ReduceMax'));
  assert.deepEqual(Buffer.from(gpu.build().model), Buffer.from(gpu.build().model), 'building twice gives the same model');
  const run = async (g: Graph) => (await createSession(g.build(), { threads: 1 })).run(feeds);
  const [want, got] = [await run(build('cpu')), await run(gpu)];
  for (const name of ['gemm', 'batched', 'trans_a', 'lsm']) {
    assert.deepEqual(got[name].dims, want[name].dims, name);
    assert.ok(maxAbsDiff(got[name].data as Float32Array, want[name].data as Float32Array) < 1e-5, name);
  }
});

for (const precision of ['q4', 'f32'] as const) {
  test(`${precision}: the inference graph built for WebGPU keeps every op on it and gives the CPU graph's logits`, async () => {
    const file = model(precision);
    const g = inferenceGraph(openWeights(file, { precision }).source, { target: 'webgpu', precision, accuracyLevel: 0, embeddings: 'vectors', attention: 'gqa', lora: true });
    const ops = opsOf(g.targetNodes());
    for (const o of NOT_ON_WEBGPU) assert.ok(!ops.has(o), `${o} left in the WebGPU graph`);
    // The same runtime requests with each graph, both on the CPU EP.
    const logits = async (target: 'cpu' | 'webgpu') => {
      const rt = await createGemmaRuntime(openWeights(file, { precision }).source, { precision, threads: 1, accuracyLevel: 0, device: target, lora: 'always', session: { device: 'cpu' } });
      try {
        const cache = rt.newCache();
        const prefill = await rt.step(cache, Array.from({ length: 40 }, (_, i) => 5 + ((i * 37) % 400)), { logits: 'all' });
        const next = await rt.step(cache, [7], { logits: 'last' });
        return Float32Array.from([...prefill, ...next]);
      } finally {
        await rt.dispose();
      }
    };
    assert.ok(maxAbsDiff(await logits('webgpu'), await logits('cpu')) < 1e-4);
  });

  test(`${precision}: the train-step graph built for WebGPU keeps every op on it and gives the CPU graph's loss and gradients`, async () => {
    const file = model(precision);
    const cfg = GEMMA3_TINY;
    const params = initLora(cfg, 4, 8, ALL_TARGETS, 3);
    const rng = new Rng(4);
    for (const m of params.modules) for (let i = 0; i < m.b.length; i++) m.b[i] = (rng.next() - 0.5) * 0.1;
    const batch = collate(syntheticExamples(2, 40, 12, cfg.vocabSize, 11), cfg.padId);
    const step = async (target: 'cpu' | 'webgpu') => {
      const g = trainGraph(openWeights(file, { precision }).source, { target, precision, accuracyLevel: 0, headBits: 8, rank: 4, alpha: 8, targets: ALL_TARGETS, recompute: true, keepProjections: precision === 'q4' ? ALL_TARGETS : undefined });
      if (target === 'webgpu') {
        const ops = opsOf(g.targetNodes());
        for (const o of NOT_ON_WEBGPU) assert.ok(!ops.has(o), `${o} left in the WebGPU train graph`);
        if (precision === 'q4') assert.ok(ops.has('com.microsoft:GatherBlockQuantized'));
      }
      const eng = new OrtStepEngine(cfg, await createSession(g.build(), { threads: 1, optimization: 'disabled' }), 4, ALL_TARGETS);
      try {
        const r = await eng.lossAndGrads(batch, params, 1 / 24);
        return Float32Array.from([r.lossSum, ...r.grads.flatMap((x) => [...x])]);
      } finally {
        await eng.dispose();
      }
    };
    const [want, got] = [await step('cpu'), await step('webgpu')];
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(maxAbsDiff(got, want) <= 1e-5 * scale, `max diff ${maxAbsDiff(got, want)} of ${scale}`);
  });
}

test('the CLI: --device cpu runs, --device webgpu without an adapter fails in one line, a bad value is a usage error', async (t) => {
  const cli = path.join(repoRoot, 'dist/cli.js');
  if (!fs.existsSync(cli)) {
    t.skip('dist/cli.js is not built (npm run build)');
    return;
  }
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'bench', '--model', model('q4'), '--prompt-tokens', '8', '--gen-tokens', '2', '--json', ...args], { encoding: 'utf8' });
  const cpu = run('--device', 'cpu');
  assert.equal(cpu.status, 0, cpu.stderr);
  assert.equal(JSON.parse(cpu.stdout).device, 'cpu');
  const bad = run('--device', 'cuda');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--device/);
  if (await hasWebGpu()) return;
  const gpu = run('--device', 'webgpu');
  assert.equal(gpu.status, 1);
  // Dawn itself may print a Vulkan loader warning first; ours is the last line.
  assert.match(gpu.stderr.trim().split('\n').at(-1)!, /^gemma-tune bench: WebGPU is not available: .*adapter/i);
});

test('the engine worker loads on the resolved device, reports it in status, and logs a fallback once', async (t) => {
  const workerPath = await buildWorker('onnx-device');
  const file = path.join(dir, 'tiny-q4.gguf');
  model('q4');
  const lines: string[] = [];
  const keep = (s: string) => lines.push(s);
  const quiet = (): void => undefined;
  const engine = new EngineClient({ workerPath, threads: 1, logger: { trace: quiet, debug: quiet, info: keep, warn: keep, error: keep } });
  t.after(() => engine.dispose());
  assert.equal((await engine.request('status', {})).device, null, 'no device before a model load');
  const cpu = await engine.request('loadModel', { path: file, device: 'cpu' });
  assert.equal(cpu.model.device, 'cpu');
  assert.deepEqual((await engine.request('status', {})).device, { requested: 'cpu', inference: 'cpu', training: 'cpu' });
  for (let i = 0; i < 2; i++) {
    const auto = await engine.request('loadModel', { path: file });
    const status = await engine.request('status', {});
    assert.equal(status.device?.requested, 'auto');
    assert.equal(auto.model.device, 'cpu', 'auto infers on the CPU');
    assert.equal(status.device?.inference, 'cpu');
    if (status.device?.training === 'cpu') assert.ok(status.device?.fallbackReason, 'auto training on the CPU says why');
  }
  const told = lines.filter((l) => l.startsWith('engine: engine device: CPU ('));
  assert.equal(told.length, (await hasWebGpu()) ? 0 : 1, `the fallback is logged once: ${JSON.stringify(told)}`);
});
