// The converted-model cache (onnx/folderCache.ts, gemma/runtimeCache.ts): a model loaded a second time
// opens from the cache and computes exactly the logits of a fresh conversion, with and without an adapter;
// a changed model file, a damaged entry (truncated, garbled, half-built by a killed process) and a cache
// folder that cannot be written all still load the right model; old entries are evicted; two loads at
// once share one entry. Tiny random Q4_0 GGUF models, the real runtime.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FolderCache } from '../../src/engine/onnx/folderCache';
import { openModel } from '../../src/engine/generate/openModel';
import { GEMMA3_TINY } from '../../src/engine/model/config';
import { writeRandomGguf } from '../../src/engine/model/randomModel';
import { toRuntimeAdapter } from '../../src/engine/train/lora';
import { trainedLora } from './generate-helpers';
import { tempDir } from './temp-helpers';

const IDS = [2, 17, 93, 5, 41, 8, 66];

function writeModel(file: string, seed: number, embedding: 'q8_0' | 'q4_0' = 'q8_0'): void {
  writeRandomGguf(file, GEMMA3_TINY, { seed, dtype: 'q4_0', embedding });
}

/** Loads `file` (cache `root`, or none), returns where its weights came from and its logits (base, then with an adapter). */
async function run(file: string, root: string | undefined, precision: 'q4' | 'f32' = 'q4'): Promise<{ from: string; base: Float32Array; tuned: Float32Array }> {
  const m = await openModel(file, { precision, threads: 1, weightCache: root });
  try {
    const rt = m.runtime;
    const base = await rt.step(rt.newCache(), IDS, { logits: 'all' });
    rt.setAdapter('tuned', toRuntimeAdapter(trainedLora(1)));
    const tuned = await rt.step(rt.newCache(), IDS, { logits: 'all', adapter: 'tuned' });
    return { from: rt.weightsFrom, base, tuned };
  } finally {
    await m.runtime.dispose();
  }
}

function assertSame(got: { base: Float32Array; tuned: Float32Array }, want: { base: Float32Array; tuned: Float32Array }, what: string): void {
  assert.deepEqual(got.base, want.base, `${what}: base logits`);
  assert.deepEqual(got.tuned, want.tuned, `${what}: logits with the adapter`);
  assert.notDeepEqual(got.base, got.tuned, `${what}: the adapter changes the logits`);
}

const entries = (root: string) => new FolderCache(root).keys();

/** A model file `m.gguf` of `seed` in a fresh folder, and the cache folder beside it (both removed after `t`). */
function modelInFolder(t: TestContext, seed: number): { dir: string; file: string; root: string } {
  const dir = tempDir('wcache-', t);
  const file = path.join(dir, 'm.gguf');
  writeModel(file, seed);
  return { dir, file, root: path.join(dir, 'converted') };
}

test('a model loaded before opens from the cache with exactly the logits of a fresh conversion, base and adapter', async (t) => {
  const { file, root } = modelInFolder(t, 1);
  const fresh = await run(file, undefined);
  assert.equal(fresh.from, 'converted');
  const first = await run(file, root);
  assert.equal(first.from, 'converted');
  assertSame(first, fresh, 'the load that fills the cache');
  assert.equal(entries(root).length, 1);
  const again = await run(file, root);
  assert.equal(again.from, 'cache');
  assertSame(again, fresh, 'the load from the cache');
  const [key] = entries(root);
  const files = fs.readdirSync(path.join(root, key)).sort();
  assert.deepEqual(files, ['base.onnx', 'entry.json', 'head.onnx', 'head.packed.bin', 'head.packed.onnx', 'lora.onnx', 'weights.bin']);
});

test('the packed head reloads exactly for every head kind: 4-bit (a Q4_0 embedding), 8-bit (Q8_0), float32 (--precision f32)', async (t) => {
  const dir = tempDir('wcache-', t);
  const root = path.join(dir, 'converted');
  for (const [embedding, precision] of [['q4_0', 'q4'], ['q8_0', 'q4'], ['q8_0', 'f32']] as const) {
    const file = path.join(dir, `${embedding}.gguf`);
    writeModel(file, 5, embedding);
    const want = await run(file, undefined, precision);
    assert.equal((await run(file, root, precision)).from, 'converted');
    const got = await run(file, root, precision);
    assert.equal(got.from, 'cache', `${embedding}, ${precision}`);
    assertSame(got, want, `${embedding} embedding, ${precision}`);
  }
});

test('a changed model file is converted again, never served the old entry', async (t) => {
  const { file, root } = modelInFolder(t, 1);
  const one = await run(file, root);
  writeModel(file, 2); // same path, same size, other weights
  const want = await run(file, undefined);
  assert.notDeepEqual(want.base, one.base);
  const got = await run(file, root);
  assert.equal(got.from, 'converted');
  assertSame(got, want, 'after the change');
  assert.equal((await run(file, root)).from, 'cache');
});

test('a damaged entry (a truncated file, garbled graph bytes, a missing record) is removed and built again', async (t) => {
  const { file, root } = modelInFolder(t, 3);
  const want = await run(file, undefined);
  await run(file, root);
  const [key] = entries(root);
  const damages: Array<[string, (p: string) => void]> = [
    ['weights.bin truncated', (p) => fs.truncateSync(path.join(p, 'weights.bin'), 4096)],
    ['base.onnx garbled (same size)', (p) => {
      const f = path.join(p, 'base.onnx');
      fs.writeFileSync(f, Buffer.alloc(fs.statSync(f).size, 0x5a));
    }],
    ['entry.json removed', (p) => fs.rmSync(path.join(p, 'entry.json'))],
    ['entry.json not JSON', (p) => fs.writeFileSync(path.join(p, 'entry.json'), '{"format":1,'),],
  ];
  for (const [what, damage] of damages) {
    damage(path.join(root, key));
    const got = await run(file, root);
    assert.equal(got.from, 'converted', what);
    assertSame(got, want, what);
    assert.deepEqual(entries(root), [key], `${what}: one whole entry again`);
  }
});

test('a cache folder that cannot be written still loads the model, converted as without a cache', async (t) => {
  const { dir, file } = modelInFolder(t, 4);
  const blocked = path.join(dir, 'not-a-folder');
  fs.writeFileSync(blocked, 'a file where the cache folder would be');
  const got = await run(file, blocked);
  assert.equal(got.from, 'converted');
  assertSame(got, await run(file, undefined), 'without a usable cache');
});

test('two loads at once build one entry; older entries beyond the limit are evicted, least recently used first', async (t) => {
  const dir = tempDir('wcache-', t);
  const root = path.join(dir, 'converted');
  const files = [1, 2, 3, 4].map((seed) => {
    const f = path.join(dir, `m${seed}.gguf`);
    writeModel(f, 10 + seed);
    return f;
  });
  const [a, b] = await Promise.all([run(files[0], root), run(files[0], root)]);
  assert.deepEqual(a.base, b.base);
  assert.equal(entries(root).length, 1);
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('.')), [], 'no temporary folder is left');
  const keyOf: string[] = [entries(root)[0]];
  for (const f of files.slice(1, 3)) {
    await run(f, root);
    keyOf.push(entries(root)[0]);
  }
  assert.deepEqual(new Set(entries(root)), new Set(keyOf), 'three entries fit');
  assert.equal((await run(files[0], root)).from, 'cache'); // the first is now the most recent
  await run(files[3], root);
  const left = new Set(entries(root));
  assert.equal(left.size, 3);
  assert.ok(!left.has(keyOf[1]), 'the least recently used entry went');
  assert.ok(left.has(keyOf[0]) && left.has(keyOf[2]));
});

test('the temporary folder of a build killed half-way is removed by the next build, and never read', async (t) => {
  const dir = tempDir('wcache-', t);
  const root = path.join(dir, 'converted');
  fs.mkdirSync(root);
  // A process that is gone: its pid has exited.
  const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
  const key = 'ab'.repeat(20);
  const leftover = path.join(root, `.${key}.${dead}.0badf00d.gemma-tmp`);
  fs.mkdirSync(leftover);
  fs.writeFileSync(path.join(leftover, 'weights.bin'), Buffer.alloc(1000));
  const cache = new FolderCache(root);
  assert.equal(cache.open(key), null);
  const entry = await cache.build(key, async (d) => {
    fs.writeFileSync(path.join(d, 'data'), 'x'.repeat(10));
    return { n: 1 };
  });
  assert.deepEqual(entry.meta, { n: 1 });
  assert.ok(!fs.existsSync(leftover), 'the dead build\'s folder is gone');
  assert.deepEqual(cache.open(key)?.meta, { n: 1 });
  // A build that fails leaves nothing behind, and the entry it would have replaced is untouched.
  await assert.rejects(cache.build('cd'.repeat(20), async () => {
    throw new Error('disk full');
  }), /disk full/);
  assert.deepEqual(fs.readdirSync(root).sort(), [key]);
  assert.throws(() => cache.open('../escape'), /not 16–128 hex digits/);
});
